// Replaced by the vault module.
