#!/usr/bin/env bash
# Writes the facevault(1) man page from the binary's own --help texts (the top level and
# every subcommand, nested ones too), so the page says what the installed binary does and
# needs no second copy of the help to keep in step. Needs bash and sed only (no help2man).
# Usage: manpage.sh FACEVAULT_BINARY VERSION OUT_FILE
set -euo pipefail
bin=$1 version=$2 out=$3

# The help of `facevault ARGS…`, with "facevault" as the program name whatever the path.
help_of() { (exec -a facevault "$bin" "$@" --help); }

# Names listed under the "Subcommands:" heading of a help text (CLI11 prints two spaces,
# the name, then its description; the list ends at a blank line).
subcommands_of() {
  sed -n '/^[Ss][Uu][Bb][Cc][Oo][Mm][Mm][Aa][Nn][Dd][Ss]:/,/^$/p' |
    sed -n 's/^  \([a-z][a-z0-9-]*\)\( .*\)\{0,1\}$/\1/p'
}

# Help text as roff inside .nf: backslashes escaped, a leading dot or quote neutralised,
# hyphens as \- (so options copy as ASCII minus signs).
roff_text() {
  sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# The footer every help text ends with (exit codes, models, …): the lines the top level's help
# and its first command's help share at their ends. Printed once, in its own section.
common_tail() {
  local -a a b
  mapfile -t a <<<"$1"
  mapfile -t b <<<"$2"
  local i=${#a[@]} j=${#b[@]}
  while [ "$i" -gt 0 ] && [ "$j" -gt 0 ] && [ "${a[i-1]}" = "${b[j-1]}" ]; do
    i=$((i - 1)) j=$((j - 1))
  done
  printf '%s\n' "${a[@]:i}" | sed '/./,$!d'
}
top=$(help_of)
first=$(printf '%s\n' "$top" | subcommands_of | head -n 1)
footer=$(common_tail "$top" "$(help_of "$first")")
strip_footer() {
  local text
  text=$(cat)
  if [ -n "$footer" ]; then text=${text%"$footer"}; fi
  printf '%s\n' "$text" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}

section() { # ARGS… of one command: its help, then its subcommands'
  local text
  text=$(help_of "$@" | strip_footer)
  printf '.SS "facevault %s"\n.nf\n' "$*"
  printf '%s\n' "$text" | roff_text
  printf '.fi\n'
  local sub
  for sub in $(printf '%s\n' "$text" | subcommands_of); do
    section "$@" "$sub"
  done
}

summary=$(printf '%s\n' "$top" | sed -n '1s/^facevault: //p')
{
  # The help texts hold UTF-8 (·, √, →): the coding line tells man's preconv so.
  printf '%s\n' "'\\\" -*- coding: UTF-8 -*-"
  printf '.TH FACEVAULT 1 "" "facevault %s" "User Commands"\n' "$version"
  printf '.SH NAME\nfacevault \\- %s\n' "$summary"
  printf '.SH SYNOPSIS\n.B facevault\n.I COMMAND\n.RI [ OPTIONS ]\n'
  printf '.SH DESCRIPTION\n.nf\n'
  printf '%s\n' "$top" | sed 1d | strip_footer | roff_text
  printf '.fi\n'
  printf '.SH COMMANDS\n'
  for sub in $(printf '%s\n' "$top" | subcommands_of); do
    section "$sub"
  done
  printf '.SH "EXIT STATUS AND NOTES"\n.nf\n'
  printf '%s\n' "$footer" | roff_text
  printf '.fi\n'
  cat <<'ROFF'
.SH ENVIRONMENT
.TP
.B FACEVAULT_VAULT
the vault directory when \-\-vault is not given (then ./var/vault)
.TP
.B FACEVAULT_MASTER_KEY
the master key (64 hex digits) instead of the vault's master.key file
.TP
.B FACEVAULT_NEW_MASTER_KEY
the new master key of "key rotate" when the key comes from the environment
.TP
.B FACEVAULT_MODEL_DIR
the model files (default ~/.cache/facevault/models)
.SH FILES
.TP
.I /etc/default/facevault
settings of facevault.service (vault, models, listen address, serve options)
.TP
.I /var/lib/facevault
the service's vault and models
.TP
.I /usr/share/facevault/scripts/fetch\-models.sh
fetches the pinned model files listed in /usr/share/facevault/models.lock
.SH "SEE ALSO"
.I /usr/share/doc/facevault/deploy.md
(install, master key, TLS, reverse proxy, backups, upgrades)
ROFF
} >"$out.tmp"
mv "$out.tmp" "$out"
