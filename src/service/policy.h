// Who may do what: the one policy table. Roles, actions and kinds of lawful basis are enums
// here and at every boundary above; their names appear only in storage, JSON and the CLI.
// The service checks every use case against role_may(); the HTTP server takes each route's
// roles from roles_for() and the OpenAPI document and the role-matrix test read the same table.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fv::service {

// admin: everything; enroller: bases, enrollment, opt-outs; investigator: search;
// auditor (data-protection officer): erasure, basis withdrawal (it erases), export, expiry,
// opt-out checks, the audit log, authorisations, the transparency report; reviewer: the
// two-person review of search candidates (EU AI Act Art 14(5)).
enum class Role { kAdmin, kEnroller, kInvestigator, kAuditor, kReviewer };

enum class Action {
  kBasisAdd,
  kBasisWithdraw,  // withdrawal erases what the basis covered: only the roles that may erase
  kEnroll,
  kSearch,         // 1:N, and 1:1 of a photo against an enrolled subject
  kVerify,         // 1:1 of two photos (no vault data involved)
  kDetect,         // faces and their quality in a photo (no vault data involved)
  kErase,
  kExport,
  kExpire,
  kOptoutAdd,
  kOptoutCheck,
  kAuditShow,
  kAuditVerify,
  kKeyRotate,      // the master key
  kKeyManage,      // API keys: create, list, revoke
  kReviewRead,     // review cases: list, show, the probe and reference crops
  kReviewDecide,   // a reviewer's decision on a candidate
  kAuthorisationManage,  // add, grant, refuse authorisations of searches
  kAuthorisationRead,    // list them (an investigator must know which one to cite)
  kReport,         // the transparency report
  kSignIn,         // any valid API key
  kHealth,         // public
  kMetrics,        // public
  kOpenApi,        // public
};

// Every action, in declaration order (tests and the OpenAPI check walk it).
const std::vector<Action>& all_actions();
const std::vector<Role>& all_roles();

const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view name);
// "admin, enroller, investigator, auditor, reviewer": for error messages.
std::string role_names(const std::vector<Role>& roles);

const char* action_name(Action a);  // as written in audit entries: "basis_add", "search", ...

// The roles that may perform `a`; empty for a public action (no caller needed).
const std::vector<Role>& roles_for(Action a);
bool is_public(Action a);
bool role_may(Role r, Action a);

enum class BasisKind { kConsent, kLegalObligation, kPublicTask, kLawEnforcement };
const char* basis_kind_name(BasisKind k);  // consent, legal-obligation, public-task, law-enforcement
// Accepts the stored names, underscores for hyphens, and "law-enforcement-authori[sz]ation".
std::optional<BasisKind> parse_basis_kind(std::string_view name);
const std::vector<BasisKind>& all_basis_kinds();

// Who is acting in one request: passed to every use case, never stored in the service.
struct Actor {
  std::string name;  // "alice", "key:0123456789ab", "public:optout-form"
  Role role = Role::kAdmin;
};

}  // namespace fv::service
