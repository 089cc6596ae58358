#include "service/policy.h"

#include <algorithm>
#include <string>

namespace fv::service {
namespace {

using R = Role;

struct PolicyRow {
  Action action;
  const char* name;
  std::vector<Role> roles;  // empty: public
};

const std::vector<PolicyRow>& table() {
  static const std::vector<PolicyRow> rows = {
      {Action::kBasisAdd, "basis_add", {R::kAdmin, R::kEnroller}},
      {Action::kBasisWithdraw, "basis_withdraw", {R::kAdmin, R::kAuditor}},
      {Action::kEnroll, "enroll", {R::kAdmin, R::kEnroller}},
      {Action::kSearch, "search", {R::kAdmin, R::kInvestigator}},
      {Action::kVerify, "verify", {R::kAdmin, R::kEnroller, R::kInvestigator}},
      {Action::kDetect, "detect", {R::kAdmin, R::kEnroller, R::kInvestigator}},
      {Action::kErase, "erase", {R::kAdmin, R::kAuditor}},
      {Action::kExport, "export", {R::kAdmin, R::kAuditor}},
      {Action::kExpire, "expire", {R::kAdmin, R::kAuditor}},
      {Action::kOptoutAdd, "optout_add", {R::kAdmin, R::kEnroller, R::kAuditor}},
      {Action::kOptoutCheck, "optout_check", {R::kAdmin, R::kAuditor}},
      {Action::kAuditShow, "audit_show", {R::kAdmin, R::kAuditor}},
      {Action::kAuditVerify, "audit_verify", {R::kAdmin, R::kAuditor}},
      {Action::kKeyRotate, "key_rotate", {R::kAdmin}},
      {Action::kKeyManage, "key_manage", {R::kAdmin}},
      {Action::kReviewRead, "review_read", {R::kAdmin, R::kInvestigator, R::kAuditor, R::kReviewer}},
      {Action::kReviewDecide, "review_decide", {R::kAdmin, R::kReviewer}},
      {Action::kAuthorisationManage, "authorisation_manage", {R::kAdmin, R::kAuditor}},
      {Action::kAuthorisationRead, "authorisation_read", {R::kAdmin, R::kInvestigator, R::kAuditor}},
      {Action::kReport, "report", {R::kAdmin, R::kAuditor}},
      {Action::kSignIn, "sign_in", {R::kAdmin, R::kEnroller, R::kInvestigator, R::kAuditor, R::kReviewer}},
      {Action::kHealth, "health", {}},
      {Action::kMetrics, "metrics", {}},
      {Action::kOpenApi, "openapi", {}},
  };
  return rows;
}

const PolicyRow& row(Action a) { return table()[static_cast<size_t>(a)]; }

}  // namespace

const std::vector<Action>& all_actions() {
  static const std::vector<Action> all = [] {
    std::vector<Action> v;
    for (auto& r : table()) v.push_back(r.action);
    return v;
  }();
  return all;
}

const std::vector<Role>& all_roles() {
  static const std::vector<Role> all = {R::kAdmin, R::kEnroller, R::kInvestigator, R::kAuditor, R::kReviewer};
  return all;
}

const char* role_name(Role r) {
  switch (r) {
    case R::kAdmin: return "admin";
    case R::kEnroller: return "enroller";
    case R::kInvestigator: return "investigator";
    case R::kAuditor: return "auditor";
    case R::kReviewer: return "reviewer";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role r : all_roles())
    if (name == role_name(r)) return r;
  return std::nullopt;
}

std::string role_names(const std::vector<Role>& roles) {
  std::string out;
  for (Role r : roles) out += (out.empty() ? "" : ", ") + std::string(role_name(r));
  return out;
}

const char* action_name(Action a) { return row(a).name; }
const std::vector<Role>& roles_for(Action a) { return row(a).roles; }
bool is_public(Action a) { return row(a).roles.empty(); }

bool role_may(Role r, Action a) {
  const auto& roles = row(a).roles;
  return std::find(roles.begin(), roles.end(), r) != roles.end();
}

const std::vector<BasisKind>& all_basis_kinds() {
  static const std::vector<BasisKind> all = {BasisKind::kConsent, BasisKind::kLegalObligation, BasisKind::kPublicTask,
                                             BasisKind::kLawEnforcement};
  return all;
}

const char* basis_kind_name(BasisKind k) {
  switch (k) {
    case BasisKind::kConsent: return "consent";
    case BasisKind::kLegalObligation: return "legal-obligation";
    case BasisKind::kPublicTask: return "public-task";
    case BasisKind::kLawEnforcement: return "law-enforcement";
  }
  return "unknown";
}

std::optional<BasisKind> parse_basis_kind(std::string_view name) {
  std::string n(name);
  std::replace(n.begin(), n.end(), '_', '-');
  if (n == "law-enforcement-authorisation" || n == "law-enforcement-authorization") n = "law-enforcement";
  for (BasisKind k : all_basis_kinds())
    if (n == basis_kind_name(k)) return k;
  return std::nullopt;
}

}  // namespace fv::service
