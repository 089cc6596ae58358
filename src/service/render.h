// The JSON form of every use case's result: one renderer for the CLI (--json) and the HTTP
// API, so both print the same field names for the same thing. Numbers are as computed except
// where a field says it is rounded (similarities to 4 decimals, boxes and keypoints to 0.1 px).
#pragma once

#include <nlohmann/json.hpp>

#include "face/types.h"
#include "service/service.h"

namespace fv::service::render {

nlohmann::json box(const face::Box& b);  // [x, y, width, height], 0.1 px
nlohmann::json face(const face::Face& f, bool with_template);  // box, score, keypoints, quality[, template]
nlohmann::json basis(const BasisResult& r);
nlohmann::json enrollment(const EnrollResult& r);
nlohmann::json search(const SearchResult& r);  // includes the "candidates for human review" notice
nlohmann::json verify_subject(const VerifyResult& r);
nlohmann::json verify_photos(const PhotoComparison& r);
nlohmann::json detection(const Detection& d);
nlohmann::json erase_receipt(const EraseReceipt& r);
nlohmann::json expire_report(const ExpireReport& r);
nlohmann::json optout(const OptoutResult& r);
nlohmann::json optout_check(const OptoutCheck& r);
nlohmann::json audit_page(const AuditPage& p);
nlohmann::json rotate_report(const vault::Vault::RotateReport& r);

// Human oversight (render_oversight.cpp: review cases; render_authorisation.cpp: authorisations
// and the oversight sweep; render_report.cpp: the transparency report).
nlohmann::json review_case(const ReviewCase& c, int reviewers_required);
nlohmann::json review_decision(const ReviewDecision& d);
nlohmann::json authorisation(const Authorisation& a);
nlohmann::json lapse_report(const LapseReport& r);
// The report as a standalone HTML page (inline SVG chart, no script, no external resource).
std::string report_html(const nlohmann::json& report);

}  // namespace fv::service::render
