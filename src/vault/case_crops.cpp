#include "vault/case_crops.h"

#include <sqlite3.h>

#include <algorithm>

#include "vault/changeset.h"
#include "vault/patchset_format.h"

namespace fv::vault {
namespace {

Result<size_t> column_of(Db& db, const std::string& table, const std::string& column) {
  FV_ASSIGN_OR_RETURN(const int at, column_position(db, table, column));
  if (at < 0) return failed_precondition("table " + table + " has no column " + column);
  return static_cast<size_t>(at);
}

}  // namespace

Result<CaseCrops> split_case_crops(Db& db, std::span<const uint8_t> rows) {
  CaseCrops out;
  FV_ASSIGN_OR_RETURN(std::vector<PatchChange> changes, decode_patchset(rows, true));
  if (std::none_of(changes.begin(), changes.end(),
                   [](const PatchChange& ch) { return ch.table == "review_case" && ch.op == SQLITE_INSERT; }))
    return out;
  FV_ASSIGN_OR_RETURN(const size_t id, column_of(db, "review_case", "id"));
  FV_ASSIGN_OR_RETURN(const size_t uid, column_of(db, "review_case", "uid"));
  FV_ASSIGN_OR_RETURN(const size_t key, column_of(db, "review_case", "probe_key"));
  FV_ASSIGN_OR_RETURN(const size_t key_id, column_of(db, "review_case", "probe_master_key_id"));
  FV_ASSIGN_OR_RETURN(const size_t crop_case, column_of(db, "review_probe", "case_id"));
  const PatchChange* opened = nullptr;
  for (const PatchChange& ch : changes) {
    if (ch.table != "review_case" || ch.op != SQLITE_INSERT || ch.fields.size() <= key) continue;
    if (ch.fields[key].type != PatchField::Type::kBlob) continue;
    if (opened) return failed_precondition("a replicated transaction opens one review case with probe crops at most");
    opened = &ch;
  }
  if (!opened) return out;
  if (opened->fields[id].type != PatchField::Type::kInteger || opened->fields[uid].type != PatchField::Type::kText)
    return failed_precondition("the new review case has no integer id or text uid");
  const int64_t case_id = opened->fields[id].integer;
  out.case_uid = opened->fields[uid].bytes;
  out.wrapped_key.assign(opened->fields[key].bytes.begin(), opened->fields[key].bytes.end());
  std::vector<PatchChange> shared, crops;
  for (const PatchChange& ch : changes) {
    if (&ch == opened) {
      PatchChange keyless = ch;
      PatchChange set_key = ch;
      set_key.op = SQLITE_UPDATE;
      for (size_t k = 0; k < ch.fields.size(); ++k) {
        const bool key_column = k == key || k == key_id;
        if (key_column) keyless.fields[k] = PatchField{PatchField::Type::kNull, 0, 0, {}};
        if (!key_column && ch.pk[k] == 0) set_key.fields[k] = PatchField{};
      }
      shared.push_back(std::move(keyless));
      crops.push_back(std::move(set_key));
      continue;
    }
    const bool crop = ch.table == "review_probe" && ch.op == SQLITE_INSERT && ch.fields.size() > crop_case &&
                      ch.fields[crop_case].type == PatchField::Type::kInteger && ch.fields[crop_case].integer == case_id;
    (crop ? crops : shared).push_back(ch);
  }
  FV_ASSIGN_OR_RETURN(out.shared, encode_patchset(shared));
  FV_ASSIGN_OR_RETURN(out.crops, encode_patchset(crops));
  for (auto* list : {&changes, &shared, &crops})
    for (auto& ch : *list)
      for (auto& f : ch.fields) wipe(f.bytes.data(), f.bytes.size());
  return out;
}

}  // namespace fv::vault
