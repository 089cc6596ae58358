// Whose rows a captured transaction writes: the envelope of a replicated message is sealed
// under the key of the one subject whose content it carries (envelope.h).
#pragma once

#include <cstdint>
#include <set>
#include <span>

#include "common/status.h"
#include "vault/sqlite.h"

namespace fv::cluster {

// The subjects whose rows `patchset` inserts or updates: the id of a `subject` row, or the
// `subject_id` of a row of any table that has that column (an update that leaves subject_id
// unchanged is looked up by its primary key in `db`, inside the writer's still-open
// transaction). Deletes name no subject: they carry primary keys only.
Result<std::set<int64_t>> subjects_written(vault::Db& db, std::span<const uint8_t> patchset);

}  // namespace fv::cluster
