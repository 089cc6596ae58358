// Accuracy per cohort: intervals, Fisher/Holm flag, "n too small", the labels CSV, and the
// rendered report (JSON fields, HTML screenshot in headless chromium, PNG).
//
// Reference values were computed independently with python3 + mpmath (bisection on the
// regularized incomplete beta / on exact binomial sums for Clopper-Pearson, Wilson's closed
// form, Fisher's test with exact fractions), e.g.
//   python3 -c "from math import sqrt; z=1.959963984540054; x,n=10,100; p=x/n; d=1+z*z/n;
//               print((p+z*z/2/n)/d - z/d*sqrt(p*(1-p)/n+z*z/4/n/n))"
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "eval/cohorts.h"

namespace fv::eval {
namespace {

constexpr double kTol = 1e-6;

TEST(CohortStats, ClopperPearsonMatchesIndependentValues) {
  struct Case { size_t x, n; double lo, hi; };
  for (const Case& c : {Case{10, 100, 0.0490046892215, 0.17622259774}, Case{40, 100, 0.303294768703, 0.502790849578},
                        Case{1, 10, 0.00252857854446, 0.445016117028}, Case{2, 200, 0.00121334901374, 0.0356546683972},
                        Case{1, 50, 0.000506227983041, 0.106469545711}, Case{5, 5, 0.478176249895, 1.0},
                        Case{3, 1000000, 6.18672550191e-07, 8.76724778815e-06}}) {
    const auto ci = clopper_pearson(c.x, c.n);
    EXPECT_NEAR(ci.low, c.lo, kTol) << c.x << "/" << c.n;
    EXPECT_NEAR(ci.high, c.hi, kTol) << c.x << "/" << c.n;
  }
  // Closed forms at the edges: 0/n → [0, 1 − 0.025^(1/n)], n/n → [0.025^(1/n), 1].
  EXPECT_EQ(clopper_pearson(0, 30).low, 0.0);
  EXPECT_NEAR(clopper_pearson(0, 30).high, 1 - std::pow(0.025, 1.0 / 30), 1e-9);
  EXPECT_NEAR(clopper_pearson(30, 30).low, std::pow(0.025, 1.0 / 30), 1e-9);
  EXPECT_EQ(clopper_pearson(30, 30).high, 1.0);
  EXPECT_EQ(clopper_pearson(0, 0).low, 0.0);  // no trials: nothing known
  EXPECT_EQ(clopper_pearson(0, 0).high, 1.0);
}

TEST(CohortStats, WilsonMatchesClosedForm) {
  struct Case { size_t x, n; double lo, hi; };
  for (const Case& c : {Case{10, 100, 0.0552291370607, 0.174365661505}, Case{40, 100, 0.309401286432, 0.497997413209},
                        Case{1, 10, 0.0178762130951, 0.404150026795}, Case{2, 200, 0.00274665813354, 0.0357217617162},
                        Case{0, 30, 0.0, 0.113513393174}, Case{30, 30, 0.886486606826, 1.0}}) {
    const auto ci = wilson(c.x, c.n);
    EXPECT_NEAR(ci.low, c.lo, kTol) << c.x << "/" << c.n;
    EXPECT_NEAR(ci.high, c.hi, kTol) << c.x << "/" << c.n;
  }
}

TEST(CohortStats, FisherAndHolm) {
  EXPECT_NEAR(fisher_exact_two_sided(3, 7, 1, 9), 0.582043343653, 1e-9);  // R: fisher.test(matrix(c(3,1,7,9),2))
  EXPECT_NEAR(fisher_exact_two_sided(1, 9, 11, 3), 0.00275945618522, 1e-9);
  EXPECT_NEAR(fisher_exact_two_sided(2, 198, 2, 198), 1.0, 1e-12);
  EXPECT_EQ(fisher_exact_two_sided(0, 0, 0, 0), 1.0);
  const auto adj = holm_adjust({0.01, 0.04, 0.03});
  EXPECT_NEAR(adj[0], 0.03, 1e-12);  // smallest × 3
  EXPECT_NEAR(adj[2], 0.06, 1e-12);  // next × 2
  EXPECT_NEAR(adj[1], 0.06, 1e-12);  // largest × 1 = 0.04, raised to keep the order
}

// The crafted set: at threshold 0.5, cohort a loses 10 of 100 genuine pairs (2 of them with no
// face), b 40 of 100, c 1 of 10 (too few); impostors within a and within b: 2 of 200 accepted
// each (plus 3 pairs of a with no face, left out); 50 impostor pairs a×b with 1 accepted;
// 5 genuine pairs with one image unlabelled, all accepted.
std::vector<CohortRecord> crafted() {
  std::vector<CohortRecord> v;
  auto add = [&](int n, double score, bool same, const std::string& a, const std::string& b, bool missing = false) {
    for (int i = 0; i < n; ++i) v.push_back({score, same, missing, a, b});
  };
  add(8, 0.30, true, "a", "a"); add(2, 0, true, "a", "a", true); add(90, 0.80, true, "a", "a");
  add(40, 0.49, true, "b", "b"); add(60, 0.50, true, "b", "b");  // 0.50: at the threshold is a match
  add(1, 0.10, true, "c", "c"); add(9, 0.90, true, "c", "c");
  add(2, 0.60, false, "a", "a"); add(198, 0.05, false, "a", "a"); add(3, 0, false, "a", "a", true);
  add(2, 0.70, false, "b", "b"); add(198, 0.10, false, "b", "b");
  add(1, 0.55, false, "a", "b"); add(49, 0.00, false, "b", "a");
  add(5, 0.90, true, "a", "");
  return v;
}

const RateRow& row(const AttributeReport& r, const std::string& metric, const std::string& cohort) {
  for (const auto& x : r.rows) if (x.metric == metric && x.cohort == cohort) return x;
  throw std::runtime_error("no row " + metric + " " + cohort);
}

TEST(CohortAnalysis, KnownCountsGiveKnownRatesIntervalsAndFlags) {
  const auto rep = analyse_attribute("group", crafted(), {{1e-3, 0.5}});
  EXPECT_EQ(rep.cohorts, (std::vector<std::string>{"a", "b", "c"}));
  const auto& fa = row(rep, "fnmr", "a");
  EXPECT_EQ(fa.errors, 10u);
  EXPECT_EQ(fa.trials, 100u);
  EXPECT_EQ(fa.no_face, 2u);
  EXPECT_DOUBLE_EQ(fa.rate, 0.10);
  EXPECT_NEAR(fa.ci.low, 0.0490046892215, kTol);
  EXPECT_NEAR(fa.ci.high, 0.17622259774, kTol);
  const auto& fb = row(rep, "fnmr", "b");
  EXPECT_EQ(fb.errors, 40u);
  EXPECT_EQ(fb.trials, 100u);
  // a vs b+c (10/100 vs 41/110) and b vs a+c (40/100 vs 11/110); Holm over the two tested.
  EXPECT_TRUE(fa.tested);
  EXPECT_NEAR(fa.p_value, 4.1849642894e-06, 1e-12);
  EXPECT_NEAR(fb.p_value, 3.66723386919e-07, 1e-13);
  EXPECT_NEAR(fb.p_adjusted, 7.33446773838e-07, 1e-13);
  EXPECT_NEAR(fa.p_adjusted, 4.1849642894e-06, 1e-12);
  EXPECT_TRUE(fa.significant);
  EXPECT_EQ(fa.direction, "lower");
  EXPECT_TRUE(fb.significant);
  EXPECT_EQ(fb.direction, "higher");
  EXPECT_EQ(fb.rest_errors, 11u);
  EXPECT_EQ(fb.rest_trials, 110u);
  // c: 10 pairs < 30: shown with its interval, marked, not tested.
  const auto& fc = row(rep, "fnmr", "c");
  EXPECT_EQ(fc.errors, 1u);
  EXPECT_TRUE(fc.too_small);
  EXPECT_FALSE(fc.tested);
  EXPECT_FALSE(fc.significant);
  EXPECT_NEAR(fc.ci.high, 0.445016117028, kTol);
  // Impostors: equal rates are not flagged; missing faces are left out; c has none at all.
  const auto& ma = row(rep, "fmr", "a");
  EXPECT_EQ(ma.errors, 2u);
  EXPECT_EQ(ma.trials, 200u);
  EXPECT_EQ(ma.no_face, 3u);
  EXPECT_NEAR(ma.ci.low, 0.00121334901374, kTol);
  EXPECT_NEAR(ma.ci.high, 0.0356546683972, kTol);
  EXPECT_NEAR(ma.wilson.low, 0.00274665813354, kTol);
  EXPECT_TRUE(ma.tested);
  EXPECT_FALSE(ma.significant);
  EXPECT_FALSE(row(rep, "fmr", "b").significant);
  EXPECT_EQ(row(rep, "fmr", "c").trials, 0u);
  EXPECT_TRUE(row(rep, "fmr", "c").too_small);
  // Cross-cohort impostors and unlabelled pairs have rows of their own, never folded in.
  const auto& cross = row(rep, "fmr", "a vs b");
  EXPECT_EQ(cross.kind, kCrossRow);
  EXPECT_EQ(cross.errors, 1u);
  EXPECT_EQ(cross.trials, 50u);
  EXPECT_NEAR(cross.ci.high, 0.106469545711, kTol);
  const auto& un = row(rep, "fnmr", "unlabelled");
  EXPECT_EQ(un.kind, kUnlabelledRow);
  EXPECT_EQ(un.trials, 5u);
  EXPECT_EQ(un.errors, 0u);
}

TEST(CohortAnalysis, TwoCohortsAreOneTestAndMinimumIsConfigurable) {
  std::vector<CohortRecord> v;
  for (int i = 0; i < 40; ++i) v.push_back({i < 4 ? 0.1 : 0.9, true, false, "f", "f"});
  for (int i = 0; i < 40; ++i) v.push_back({i < 4 ? 0.1 : 0.9, true, false, "m", "m"});
  CohortOptions opt;
  auto rep = analyse_attribute("sex", v, {{1e-4, 0.5}}, opt);
  EXPECT_TRUE(row(rep, "fnmr", "f").tested);
  EXPECT_DOUBLE_EQ(row(rep, "fnmr", "f").p_adjusted, row(rep, "fnmr", "f").p_value);  // no Holm factor
  EXPECT_FALSE(row(rep, "fnmr", "f").significant);
  opt.min_trials = 41;
  rep = analyse_attribute("sex", v, {{1e-4, 0.5}}, opt);
  EXPECT_TRUE(row(rep, "fnmr", "m").too_small);
  EXPECT_FALSE(row(rep, "fnmr", "m").tested);
}

// ---------------------------------------------------------------- labels CSV

TEST(CohortLabels, ParsesIdentityAndImageKeys) {
  auto l = parse_cohort_labels("\xEF\xBB\xBFidentity,sex,age_band\r\n# a comment\r\nAnn_Lee,female,30-39\r\n\r\nBo_Li,male,\r\n");
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  EXPECT_FALSE(l->by_image);
  EXPECT_EQ(l->attributes, (std::vector<std::string>{"sex", "age_band"}));
  EXPECT_EQ(l->label(0, "Ann_Lee", "Ann_Lee_0001.jpg"), "female");
  EXPECT_EQ(l->label(1, "Bo_Li", "Bo_Li_0001.jpg"), "");  // empty cell: not labelled
  EXPECT_EQ(l->label(0, "Nobody", "Nobody_0001.jpg"), "");
  auto i = parse_cohort_labels("image,sex\nAnn_Lee_0002.jpg,female\nAnn_Lee_0002.jpg,female\n");
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();  // a repeated, identical row is harmless
  EXPECT_TRUE(i->by_image);
  EXPECT_EQ(i->label(0, "Ann_Lee", "Ann_Lee_0002.jpg"), "female");
  EXPECT_EQ(i->label(0, "Ann_Lee", "Ann_Lee_0001.jpg"), "");
}

TEST(CohortLabels, RefusesBadInputWithAClearError) {
  struct Case { const char* text; const char* says; };
  for (const Case& c : {Case{"", "empty labels file"}, Case{"\n# only a comment\n", "empty labels file"},
                        Case{"identity,sex\n", "no rows"}, Case{"name,sex\nA,f\n", "must start with `identity` or `image`"},
                        Case{"identity\nA\n", "no attribute column"}, Case{"identity,sex,sex\nA,f,f\n", "appears twice"},
                        Case{"identity,sex,age\nA,f\n", "labels:2: expected 3 fields, found 2"},
                        Case{"identity,sex\nA,f,extra\n", "expected 2 fields, found 3"},
                        Case{"identity,sex\nA,female\nB,male\nA,male\n", "labels:4: `A` is listed again with a different label"},
                        Case{"identity,sex\n,female\n", "empty identity"}, Case{"identity,sex\n\"A, B\",f\n", "quoted fields"},
                        Case{"identity,\nA,f\n", "has no name"}}) {
    auto r = parse_cohort_labels(c.text);
    ASSERT_FALSE(r.is_ok()) << c.text;
    EXPECT_NE(r.status().to_string().find(c.says), std::string::npos) << r.status().to_string();
  }
  // Hostile bytes do not crash the parser (NULs, lone CR, very long lines).
  std::string junk = "identity,sex\n";
  junk += std::string("A\0B", 3) + ",\r\r" + std::string(100000, 'x') + "\n";
  auto r = parse_cohort_labels(junk);
  EXPECT_TRUE(r.is_ok() || !r.status().to_string().empty());
  EXPECT_FALSE(read_cohort_labels("/nonexistent/labels.csv").is_ok());
}

// ---------------------------------------------------------------- the report

CohortReport crafted_report() {
  CohortReport r;
  r.command = "facevault eval cohorts --root lfw/images --pairs pairs.txt --cohorts labels.csv";
  r.model = "test-model";
  r.calibration = "crafted";
  r.pairs_file = "pairs.txt";
  r.labels_file = "labels.csv";
  r.pairs = 1010;
  r.images = 1500;
  r.ops = {{1e-3, 0.5}, {1e-4, 0.6}};
  auto v = crafted();
  v.push_back({0.9, true, false, "<script>", "<script>"});  // a hostile label is escaped, not run
  r.attributes.push_back(analyse_attribute("group", v, r.ops));
  return r;
}

TEST(CohortReport, JsonHasStableFields) {
  const auto j = cohort_report_json(crafted_report());
  EXPECT_EQ(j["interval"], "clopper-pearson");
  EXPECT_EQ(j["min_trials"], 30);
  ASSERT_EQ(j["operating_points"].size(), 2u);
  const auto& rows = j["attributes"][0]["rows"];
  ASSERT_FALSE(rows.empty());
  for (const char* k : {"metric", "target_fmr", "threshold", "cohort", "kind", "errors", "trials", "no_face", "rate", "ci_low",
                        "ci_high", "wilson_low", "wilson_high", "n_too_small", "tested", "significant"})
    EXPECT_TRUE(rows[0].contains(k)) << k;
  EXPECT_EQ(rows[0]["cohort"], "<script>");
  EXPECT_EQ(rows[1]["cohort"], "a");
  EXPECT_EQ(rows[1]["errors"], 10);
  EXPECT_TRUE(rows[1].contains("p_holm"));
}

std::filesystem::path scratch(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("fv-cohorts-" + std::to_string(getpid()) + "-" + name);
}

TEST(CohortReport, HtmlIsStandaloneAndRendersInAHeadlessBrowser) {
  const auto rep = crafted_report();
  const std::string html = cohort_report_html(rep);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // no script at all, the label included
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no external resource
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("n too small"), std::string::npos);
  EXPECT_NE(html.find("10 / 100"), std::string::npos);
  EXPECT_NE(html.find("never infers"), std::string::npos);

  const auto page = scratch("report.html"), shot = scratch("report.png"), png = scratch("chart.png");
  { std::ofstream(page) << html; }
  ASSERT_TRUE(write_cohort_png(rep, png).is_ok());
  const cv::Mat chart = cv::imread(png.string());
  ASSERT_FALSE(chart.empty());
  double lo = 0, hi = 0;
  cv::minMaxLoc(chart.reshape(1), &lo, &hi);
  EXPECT_LT(lo, 100);  // something dark was drawn on the white canvas
  EXPECT_GT(chart.rows, 400);
  if (const char* keep = std::getenv("FV_COHORT_REPORT_DIR")) {  // to look at it
    std::filesystem::copy_file(page, std::filesystem::path(keep) / "cohorts.html", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(png, std::filesystem::path(keep) / "cohorts-chart.png", std::filesystem::copy_options::overwrite_existing);
  }

  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "chromium is not installed: the HTML report was not rendered (apt-get install chromium)";
  }
  const std::string cmd = "timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot=" + shot.string() +
                          " --window-size=1000,1400 file://" + page.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const cv::Mat img = cv::imread(shot.string());
  ASSERT_FALSE(img.empty()) << "no screenshot at " << shot;
  EXPECT_EQ(img.cols, 1000);
  cv::Mat grey;
  img.reshape(1).copyTo(grey);
  cv::minMaxLoc(grey, &lo, &hi);
  EXPECT_LT(lo, 80) << "the page rendered as a single light colour";
  EXPECT_GT(hi, 200);
  cv::Scalar mean, sd;
  cv::meanStdDev(img, mean, sd);
  EXPECT_GT(sd[0], 10) << "too uniform to be the report";
  if (const char* keep = std::getenv("FV_COHORT_REPORT_DIR"))
    std::filesystem::copy_file(shot, std::filesystem::path(keep) / "cohorts-screenshot.png", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(page);
  std::filesystem::remove(shot);
  std::filesystem::remove(png);
}

}  // namespace
}  // namespace fv::eval
