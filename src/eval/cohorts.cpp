#include "eval/cohorts.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

namespace fv::eval {
namespace {

// Modified Lentz continued fraction for I_x(a, b) (converges fast for x < (a+1)/(a+b+2)).
// Iterations grow like sqrt(max(a, b)): the cap covers hundreds of millions of trials.
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 200000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d; if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d; if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < eps) break;
  }
  return h;
}

// x with I_x(a, b) = p, by bisection (I is increasing in x): slow but exact to double precision.
double beta_quantile(double p, double a, double b) {
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-16; ++i) {
    const double mid = (lo + hi) / 2;
    (incomplete_beta(a, b, mid) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// z with Φ(z) = p (standard normal), by bisection on erfc.
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

double log_choose(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(x > 0)) return 0;
  if (!(x < 1)) return 1;
  const double bt = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return bt * beta_cf(a, b, x) / a;
  return 1 - bt * beta_cf(b, a, 1 - x) / b;
}

Interval clopper_pearson(size_t errors, size_t trials, double confidence) {
  if (trials == 0) return {0, 1};
  const double a = (1 - confidence) / 2, x = double(errors), n = double(trials);
  Interval r;
  r.low = errors == 0 ? 0 : beta_quantile(a, x, n - x + 1);
  r.high = errors >= trials ? 1 : beta_quantile(1 - a, x + 1, n - x);
  return r;
}

Interval wilson(size_t errors, size_t trials, double confidence) {
  if (trials == 0) return {0, 1};
  const double z = normal_quantile(1 - (1 - confidence) / 2), n = double(trials), p = double(errors) / n;
  const double denom = 1 + z * z / n;
  const double centre = (p + z * z / (2 * n)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double fisher_exact_two_sided(size_t a, size_t b, size_t c, size_t d) {
  const double row1 = double(a) + double(b), col1 = double(a) + double(c);
  const double n = row1 + double(c) + double(d);
  if (n == 0) return 1;
  const size_t kmin = static_cast<size_t>(std::max(0.0, row1 + col1 - n)), kmax = static_cast<size_t>(std::min(row1, col1));
  auto logp = [&](double k) { return log_choose(col1, k) + log_choose(n - col1, row1 - k) - log_choose(n, row1); };
  const double observed = logp(double(a));
  double p = 0;
  for (size_t k = kmin; k <= kmax; ++k) {
    const double lk = logp(double(k));
    if (lk <= observed + 1e-7) p += std::exp(lk);  // log-space tolerance ≈ relative 1e-7
  }
  return std::min(1.0, p);
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const size_t m = p.size();
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p[i] < p[j]; });
  std::vector<double> out(m);
  double running = 0;
  for (size_t r = 0; r < m; ++r) {
    running = std::max(running, std::min(1.0, double(m - r) * p[order[r]]));
    out[order[r]] = running;
  }
  return out;
}

AttributeReport analyse_attribute(const std::string& attribute, const std::vector<CohortRecord>& records,
                                  const std::vector<OperatingPoint>& ops, const CohortOptions& opt) {
  AttributeReport rep;
  rep.attribute = attribute;
  std::set<std::string> cohorts, cross;
  bool unlabelled = false;
  auto group_of = [](const CohortRecord& r) -> std::pair<std::string, const char*> {
    if (r.cohort_a.empty() || r.cohort_b.empty()) return {"unlabelled", kUnlabelledRow};
    if (r.cohort_a == r.cohort_b) return {r.cohort_a, kCohortRow};
    const auto& lo = std::min(r.cohort_a, r.cohort_b);
    const auto& hi = std::max(r.cohort_a, r.cohort_b);
    return {lo + " vs " + hi, kCrossRow};
  };
  for (const auto& r : records) {
    for (const auto* c : {&r.cohort_a, &r.cohort_b}) if (!c->empty()) cohorts.insert(*c);
    auto g = group_of(r);
    if (g.second == kCrossRow) cross.insert(g.first);
    if (g.second == kUnlabelledRow) unlabelled = true;
  }
  rep.cohorts.assign(cohorts.begin(), cohorts.end());
  for (const auto& op : ops) {
    for (const char* metric : {"fnmr", "fmr"}) {
      const bool genuine = std::string(metric) == "fnmr";
      std::vector<RateRow> rows;
      auto add = [&](const std::string& name, const char* kind) {
        RateRow r;
        r.metric = metric;
        r.target_fmr = op.target_fmr;
        r.threshold = op.threshold;
        r.cohort = name;
        r.kind = kind;
        rows.push_back(r);
      };
      for (const auto& c : cohorts) add(c, kCohortRow);
      for (const auto& c : cross) add(c, kCrossRow);
      if (unlabelled) add("unlabelled", kUnlabelledRow);
      for (const auto& rec : records) {
        if (rec.same != genuine) continue;
        auto g = group_of(rec);
        auto it = std::find_if(rows.begin(), rows.end(), [&](const RateRow& r) { return r.cohort == g.first && r.kind == g.second; });
        if (it == rows.end()) continue;  // unreachable: every group has a row
        if (rec.missing) {
          ++it->no_face;
          if (genuine) { ++it->errors; ++it->trials; }
          continue;
        }
        ++it->trials;
        it->errors += genuine ? rec.score < op.threshold : rec.score >= op.threshold;
      }
      // Each labelled cohort against the other labelled cohorts pooled.
      size_t all_errors = 0, all_trials = 0;
      for (const auto& r : rows) if (r.kind == kCohortRow) { all_errors += r.errors; all_trials += r.trials; }
      std::vector<size_t> tested;
      for (size_t i = 0; i < rows.size(); ++i) {
        auto& r = rows[i];
        r.rate = r.trials ? double(r.errors) / r.trials : 0;
        r.ci = clopper_pearson(r.errors, r.trials, opt.confidence);
        r.wilson = wilson(r.errors, r.trials, opt.confidence);
        r.too_small = r.trials < opt.min_trials;
        if (r.kind != kCohortRow) continue;
        r.rest_errors = all_errors - r.errors;
        r.rest_trials = all_trials - r.trials;
        r.rest_rate = r.rest_trials ? double(r.rest_errors) / r.rest_trials : 0;
        if (r.too_small || r.rest_trials < opt.min_trials || cohorts.size() < 2) continue;
        r.tested = true;
        r.p_value = fisher_exact_two_sided(r.errors, r.trials - r.errors, r.rest_errors, r.rest_trials - r.rest_errors);
        tested.push_back(i);
      }
      // Holm across the cohorts tested. With exactly two cohorts both tests are the same 2×2
      // table, so the family is one test and needs no adjustment.
      std::vector<double> p;
      for (size_t i : tested) p.push_back(rows[i].p_value);
      const auto adj = cohorts.size() == 2 ? p : holm_adjust(p);
      for (size_t k = 0; k < tested.size(); ++k) {
        auto& r = rows[tested[k]];
        r.p_adjusted = adj[k];
        r.significant = adj[k] < opt.alpha;
        if (r.significant) r.direction = r.rate > r.rest_rate ? "higher" : "lower";
      }
      // Cross-cohort and unlabelled groups are listed only where they have pairs of this kind;
      // a labelled cohort always has its row, empty or not.
      for (const auto& r : rows)
        if (r.kind == kCohortRow || r.trials > 0 || r.no_face > 0) rep.rows.push_back(r);
    }
  }
  return rep;
}

// ---------------------------------------------------------------- labels file

std::string CohortLabels::label(size_t i, const std::string& identity, const std::string& file) const {
  auto it = labels.find(by_image ? file : identity);
  return it == labels.end() || i >= it->second.size() ? std::string() : it->second[i];
}

Result<CohortLabels> parse_cohort_labels(const std::string& text, const std::string& source) {
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  auto split = [&](const std::string& line) {
    std::vector<std::string> f;
    size_t start = 0;
    for (;;) {
      const size_t comma = line.find(',', start);
      f.push_back(trim(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return f;
  };
  std::string body = text;
  if (body.rfind("\xEF\xBB\xBF", 0) == 0) body.erase(0, 3);  // a UTF-8 BOM from spreadsheet exports
  std::istringstream in(body);
  CohortLabels out;
  std::string line;
  size_t lineno = 0, columns = 0;
  auto where = [&] { return source + ":" + std::to_string(lineno) + ": "; };
  while (std::getline(in, line)) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.find('"') != std::string::npos) return invalid_argument(where() + "quoted fields are not supported (a label may not contain a comma or a quote)");
    auto f = split(t);
    if (columns == 0) {  // the header
      if (f[0] != "identity" && f[0] != "image")
        return invalid_argument(where() + "the header must start with `identity` or `image`, then one column per attribute (e.g. identity,sex,age_band)");
      if (f.size() < 2) return invalid_argument(where() + "the header names no attribute column (e.g. identity,sex)");
      out.by_image = f[0] == "image";
      for (size_t i = 1; i < f.size(); ++i) {
        if (f[i].empty()) return invalid_argument(where() + "attribute column " + std::to_string(i + 1) + " has no name");
        if (std::count(f.begin() + 1, f.begin() + i, f[i])) return invalid_argument(where() + "attribute `" + f[i] + "` appears twice in the header");
        out.attributes.push_back(f[i]);
      }
      columns = f.size();
      continue;
    }
    if (f.size() != columns)
      return invalid_argument(where() + "expected " + std::to_string(columns) + " fields, found " + std::to_string(f.size()));
    if (f[0].empty()) return invalid_argument(where() + "empty " + std::string(out.by_image ? "image" : "identity"));
    std::vector<std::string> labels(f.begin() + 1, f.end());
    auto [it, inserted] = out.labels.emplace(f[0], labels);
    if (!inserted && it->second != labels)
      return invalid_argument(where() + "`" + f[0] + "` is listed again with a different label");
  }
  if (columns == 0) return invalid_argument(source + ": empty labels file (expected a header such as identity,sex)");
  if (out.labels.empty()) return invalid_argument(source + ": the labels file has a header but no rows");
  return out;
}

Result<CohortLabels> read_cohort_labels(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open labels file " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return parse_cohort_labels(s.str(), path.string());
}

}  // namespace fv::eval
