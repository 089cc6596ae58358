// A review case's probe crops apart from the other rows of the transaction that opens the case
// (cluster mode, docs/cluster.md "Probe crops stay out of NATS"). The crops are sealed under the
// case's own key, which the case row holds wrapped by the master key. In a stream, that wrapped
// key would open the crops for whoever holds the master key, long after the case closed. So the
// writer sends the crops and the key columns apart, sealed under the case key, which the
// replicas hand each other outside the stream and destroy when the case closes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "vault/crypto.h"
#include "vault/sqlite.h"

namespace fv::vault {

struct CaseCrops {
  std::string case_uid;         // empty: the rows open no case with a key (nothing is split)
  std::vector<uint8_t> shared;  // every other change; the new case row with its key columns NULL
  std::vector<uint8_t> crops;   // the case's probe crops, and an update setting its key columns
  Bytes wrapped_key;            // review_case.probe_key of the new case
};

// Splits a transaction's rows (a patchset) read against `db`'s schema. kFailedPrecondition when
// they open more than one case with a key.
Result<CaseCrops> split_case_crops(Db& db, std::span<const uint8_t> rows);

}  // namespace fv::vault
