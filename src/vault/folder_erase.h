// Removing a folder that held vault data (a local vault a cluster node no longer hosts, a
// temporary client's copy of the meta vault): every regular file under it is overwritten with
// zeros and synced before the folder is removed, as the vault overwrites the pages it frees.
#pragma once

#include <filesystem>

#include "common/status.h"

namespace fv::vault {

// Overwrites, syncs and removes every file under `dir`, then the folder. A folder that does not
// exist is fine. kIoError naming the first file that could not be overwritten (the folder is
// then left in place: nothing is removed unread).
Status erase_folder(const std::filesystem::path& dir);

}  // namespace fv::vault
