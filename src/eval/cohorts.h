// Accuracy per cohort (evidence for a data-protection impact assessment): FNMR and FMR at the
// vault's operating thresholds for each cohort of an attribute the evaluator labelled (sex, age
// band, skin tone, capture conditions…), with exact confidence intervals, a significance flag
// and the counts behind every rate. facevault never infers a label: they come from a CSV file.
//
// Pure functions over (score, same, cohort) records, so every figure is testable without models.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace fv::eval {

// ---------------------------------------------------------------- statistics

struct Interval {
  double low = 0, high = 1;
};

// Clopper-Pearson ("exact") interval for `errors` out of `trials`: the one reported, because
// its coverage is never below `confidence` however small the count — a DPIA must not overstate
// certainty, and error counts near zero are where Wilson's coverage dips. trials == 0 → [0, 1].
Interval clopper_pearson(size_t errors, size_t trials, double confidence = 0.95);
// Wilson score interval, in the JSON beside it for readers who use it (narrower, coverage
// near but not always above nominal).
Interval wilson(size_t errors, size_t trials, double confidence = 0.95);
// Two-sided Fisher's exact test of the 2×2 table [[a, b], [c, d]] (errors, non-errors of a
// group and of the rest): the sum of the probabilities of all tables with the same margins
// that are no more likely than the observed one (R's fisher.test convention, relative
// tolerance 1e-7 for ties).
double fisher_exact_two_sided(size_t a, size_t b, size_t c, size_t d);
// Holm's step-down adjustment of a family of p-values (same order as given, capped at 1).
std::vector<double> holm_adjust(const std::vector<double>& p);
// Regularized incomplete beta I_x(a, b) (continued fraction); exposed for the tests.
double incomplete_beta(double a, double b, double x);

// ---------------------------------------------------------------- records and report

// One compared pair for one attribute. A cohort label of "" means the evaluator gave none.
struct CohortRecord {
  double score = 0;
  bool same = false;     // genuine pair (same person) or impostor pair
  bool missing = false;  // a face was not found in one of the images: no score
  std::string cohort_a, cohort_b;
};

struct OperatingPoint {
  double target_fmr = 0;  // the vault setting (search_max_fmr), e.g. 1e-3
  double threshold = 0;   // the embedder calibration table's threshold for it
};

struct CohortOptions {
  double confidence = 0.95;
  double alpha = 0.05;      // family-wise, Holm-adjusted across the cohorts of one attribute
  size_t min_trials = 30;   // below this a rate is reported and marked "n too small", never tested
};

// Kinds of row: a labelled cohort; pairs whose two images carry different labels (impostors of
// different cohorts, or a genuine pair with per-image labels that differ); pairs with a missing
// label. The last two are counted and shown, never folded into a cohort.
inline constexpr const char* kCohortRow = "cohort";
inline constexpr const char* kCrossRow = "cross";
inline constexpr const char* kUnlabelledRow = "unlabelled";

struct RateRow {
  std::string metric;  // "fnmr" (genuine pairs) or "fmr" (impostor pairs)
  double target_fmr = 0, threshold = 0;
  std::string cohort, kind;
  size_t errors = 0, trials = 0;
  size_t no_face = 0;  // genuine: counted in errors and trials; impostor: left out of both
  double rate = 0;
  Interval ci, wilson;
  bool too_small = false;     // trials < min_trials
  bool tested = false;        // a Fisher test was run (labelled cohort, enough trials, ≥ 2 cohorts)
  double p_value = 1, p_adjusted = 1;
  bool significant = false;   // p_adjusted < alpha
  std::string direction;      // "higher" / "lower" than the rest (when significant)
  double rest_rate = 0;       // the other labelled cohorts pooled
  size_t rest_errors = 0, rest_trials = 0;
};

struct AttributeReport {
  std::string attribute;
  std::vector<std::string> cohorts;  // the labelled cohorts seen, sorted
  std::vector<RateRow> rows;         // per operating point: fnmr rows, then fmr rows
};

// Rates per cohort of one attribute at each operating point. Genuine pair of cohort C: both
// images labelled C; a missing face counts as a false non-match (what the person would live
// through). Impostor pair of cohort C: both people labelled C (the FMR a member of C faces from
// people like them, the harder case); a missing face is left out. score >= threshold = match.
AttributeReport analyse_attribute(const std::string& attribute, const std::vector<CohortRecord>& records,
                                  const std::vector<OperatingPoint>& ops, const CohortOptions& opt = {});

// ---------------------------------------------------------------- the report (cohort_report.cpp)

struct CohortReport {
  std::string command;                 // how it was produced, shown in the report
  std::string model, calibration;      // embedder model id; its calibration table's source
  std::string pairs_file, labels_file;
  size_t pairs = 0, images = 0, images_without_face = 0;
  CohortOptions options;
  std::vector<OperatingPoint> ops;
  std::vector<AttributeReport> attributes;
};

// Stable field names (docs/quality.md lists them).
nlohmann::json cohort_report_json(const CohortReport& r);
// A standalone page: no script, no external resource; charts are inline SVG.
std::string cohort_report_html(const CohortReport& r);
// The same charts drawn with OpenCV, for documents that take an image.
Status write_cohort_png(const CohortReport& r, const std::filesystem::path& path);

// ---------------------------------------------------------------- labels file

// LABELS.csv: a header `identity,<attr>,...` or `image,<attr>,...`, then one row per identity
// (LFW folder name) or image file name (e.g. Name_0001.jpg). An empty label = not labelled.
// Lines starting with '#' and blank lines are skipped; CRLF and a UTF-8 BOM are accepted;
// quoted fields are refused (labels with commas are not supported).
struct CohortLabels {
  bool by_image = false;                   // keys are image file names, not identities
  std::vector<std::string> attributes;
  std::map<std::string, std::vector<std::string>> labels;  // key → one label per attribute
  // The label of attribute `i` for an image of `identity` named `file` ("" when none).
  std::string label(size_t i, const std::string& identity, const std::string& file) const;
};
Result<CohortLabels> parse_cohort_labels(const std::string& text, const std::string& source = "labels");
Result<CohortLabels> read_cohort_labels(const std::filesystem::path& path);

}  // namespace fv::eval
