// A use case forwarded to a node that hosts the subject's shard (ClusterService, cluster
// mode): the call (operation, acting caller, request, photo bytes) and its result, encoded
// for the sealed request/reply of cluster/rpc.h. CBOR (nlohmann::json), so photo bytes travel
// as bytes. The node that forwards has authenticated the caller; the node that runs the use
// case checks the caller's role and writes the audit entry, as for a local call.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "face/types.h"
#include "service/policy.h"
#include "service/types.h"
#include "vault/audit.h"
#include "vault/crypto.h"

namespace fv::service {

struct ShardCall {
  // add_basis, withdraw_basis, enroll, enroll_template, erase, export_subject, verify_subject;
  // per shard: optout_shard (the opt-out `subject` = its uid, `tmpl`), optout_check,
  // candidate (a review candidate's reference and crop, `subject` = uid, `reason` = purpose),
  // reference_image (its reference crop, opened), expire (`as_of`, `dry_run`), audit_read
  // (a page of the shard's chain that `audit` selects, its counts when `audit_counts`; the
  // subject filter travels in `subject`), audit_verify
  std::string op{};
  Actor actor{};
  BasisRequest basis{};      // add_basis
  int64_t id = 0;            // withdraw_basis: the basis (cluster id)
  EnrollRequest enroll{};    // enroll, enroll_template
  face::FaceTemplate tmpl{};  // enroll_template
  std::string origin_sha256{}, origin_format{};  // enroll_template: what the template was taken from
  std::string subject{};     // erase, export_subject, verify_subject; add_basis: the uid the sender claimed
  std::string reason{};      // erase
  bool include_templates = false;  // export_subject
  SearchRequest search{};    // verify_subject
  std::vector<uint8_t> image{};  // enroll, verify_subject: the photo; enroll_template: the image to keep
  std::string as_of{};       // expire: the instant due dates are compared with
  bool dry_run = false;      // expire
  vault::AuditQuery audit{};  // audit_read: filters, order, limit, and the page's cursor
  bool audit_counts = false;  // audit_read: also count the entries of `subject` since `since`, and those `audit` selects
};

vault::Bytes encode_call(const ShardCall& c);
// kCorruptData on anything malformed.
Result<ShardCall> decode_call(std::span<const uint8_t> bytes);

vault::Bytes encode_result(const BasisResult& r);
vault::Bytes encode_result(const EnrollResult& r);
vault::Bytes encode_result(const EraseReceipt& r);
vault::Bytes encode_result(const VerifyResult& r);
vault::Bytes encode_result(const nlohmann::json& r);
vault::Bytes encode_result(const OptoutResult& r);
vault::Bytes encode_result(const OptoutCheck& r);
Result<OptoutResult> decode_optout_result(std::span<const uint8_t> bytes);
// A review candidate on its shard: its reference and whether a reference crop is kept for the
// case's purpose; nullopt when the subject is gone.
using CandidateOnShard = std::optional<std::pair<std::string, bool>>;
vault::Bytes encode_result(const CandidateOnShard& r);
Result<CandidateOnShard> decode_candidate(std::span<const uint8_t> bytes);
Result<OptoutCheck> decode_optout_check(std::span<const uint8_t> bytes);
// A shard's part of a retention run: the receipts of the subjects it erased (finished: their
// stream messages erased, their replicas named).
vault::Bytes encode_result(const ExpireReport& r);
Result<ExpireReport> decode_expire_report(std::span<const uint8_t> bytes);
// A shard's audit chain, read for `audit show` and the transparency report (which also needs
// the purposes its bases define).
struct ShardAudit {
  std::vector<vault::AuditEntry> entries;
  std::vector<std::string> purposes;
  bool more = false;  // a page: more entries follow the last one (ask again after it)
  // When asked (audit_counts): the entries since/of the subject, and those the filters select.
  std::optional<int64_t> total, matched;
  // The page is what the call's query selects (filters, order, cursor); a node of the release
  // before sends its chain in seq order, unfiltered, and leaves this false.
  bool selected = false;
};
// The first entries of `whole` (in the order read) up to about `page_bytes` of JSON (at least
// one), `more` set when others were cut off.
ShardAudit cut_audit_page(ShardAudit whole, size_t page_bytes);
vault::Bytes encode_result(const ShardAudit& r);
Result<ShardAudit> decode_shard_audit(std::span<const uint8_t> bytes);
vault::Bytes encode_result(const vault::AuditVerifyReport& r);
Result<vault::AuditVerifyReport> decode_verify_report(std::span<const uint8_t> bytes);
vault::Bytes encode_result(const ReviewImage& r);
Result<ReviewImage> decode_review_image(std::span<const uint8_t> bytes);
Result<BasisResult> decode_basis_result(std::span<const uint8_t> bytes);
Result<EnrollResult> decode_enroll_result(std::span<const uint8_t> bytes);
Result<EraseReceipt> decode_erase_receipt(std::span<const uint8_t> bytes);
Result<VerifyResult> decode_verify_result(std::span<const uint8_t> bytes);
Result<nlohmann::json> decode_json_result(std::span<const uint8_t> bytes);

}  // namespace fv::service
