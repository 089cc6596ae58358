// Rendering of the per-cohort accuracy report: JSON, a standalone HTML page with inline SVG
// charts (rate per cohort with its confidence interval), and the same charts as PNG.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/html.h"
#include "eval/cohorts.h"

namespace fv::eval {
namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string pct(double v) { return fmt(v > 0 && v < 0.001 ? "%.3f %%" : "%.2f %%", 100 * v); }
std::string sci(double v) { return fmt("%.0e", v); }

std::string esc(const std::string& s) { return html_escape(s); }

// OpenCV's Hershey fonts draw ASCII only.
std::string ascii(const std::string& s) {
  std::string o;
  for (unsigned char c : s) o += c >= 32 && c < 127 ? char(c) : '?';
  return o;
}

std::string status_of(const RateRow& r) {
  if (r.trials == 0) return "no pairs";
  if (r.too_small) return "n too small";
  if (r.significant) return "differs (" + r.direction + ")";
  if (r.tested) return "no significant difference";
  return r.kind == kCohortRow ? "not tested" : r.kind == kCrossRow ? "cross-cohort pairs" : "no label";
}

// One chart: the rows of one attribute and metric, grouped by operating point.
struct Chart {
  std::string title;
  std::vector<const RateRow*> rows;
  double xmax = 0.01;
};

std::vector<Chart> charts_of(const CohortReport& r) {
  std::vector<Chart> out;
  for (const auto& a : r.attributes) {
    for (const char* metric : {"fnmr", "fmr"}) {
      Chart c;
      c.title = a.attribute + ": " + (std::string(metric) == "fnmr" ? "FNMR (genuine pairs rejected)" : "FMR (impostor pairs accepted, within cohort)");
      // The axis fits the rows with enough pairs; a longer whisker (n too small) runs off the
      // edge without an end cap, its numbers are beside it.
      bool any_sized = false;
      for (const auto& row : a.rows) if (row.metric == metric) { c.rows.push_back(&row); any_sized = any_sized || !row.too_small; }
      for (auto* row : c.rows) if (row->trials && (!row->too_small || !any_sized)) c.xmax = std::max(c.xmax, row->ci.high);
      // A round axis end: 1, 2 or 5 × 10^k.
      const double e = std::pow(10.0, std::floor(std::log10(c.xmax)));
      for (double m : {1.0, 2.0, 5.0, 10.0}) if (m * e >= c.xmax - 1e-12) { c.xmax = std::min(1.0, m * e); break; }
      out.push_back(std::move(c));
    }
  }
  return out;
}

// Layout shared by SVG and PNG (pixels).
constexpr int kW = 940, kLabelW = 190, kPlotW = 420, kRowH = 22, kHead = 34, kGroupH = 22, kAxisH = 28;
int chart_height(const Chart& c) {
  int groups = 0;
  double last = -1;
  for (auto* r : c.rows) if (r->target_fmr != last) { ++groups; last = r->target_fmr; }
  return kHead + groups * kGroupH + int(c.rows.size()) * kRowH + kAxisH;
}
std::string num(double v) { return fmt(v > 0 && v < 0.001 ? "%.3f" : "%.2f", 100 * v); }
std::string row_text(const RateRow& r) {
  return pct(r.rate) + " [" + num(r.ci.low) + "-" + num(r.ci.high) + "] " + std::to_string(r.errors) + "/" + std::to_string(r.trials) +
         (r.too_small ? "  n too small" : r.significant ? "  " + r.direction : "");
}
// Axis ticks: as few decimals as the step needs.
std::string tick(double v, double step) { return fmt(step >= 0.01 ? "%.0f %%" : step >= 0.001 ? "%.1f %%" : "%.2f %%", 100 * v); }
// Red: a significantly higher error rate; green: significantly lower; grey: too few pairs or
// not a cohort; blue otherwise.
const char* colour_of(const RateRow& r) {
  return r.kind != kCohortRow ? "#666666" : r.too_small ? "#999999" : !r.significant ? "#1f5fa8" : r.direction == "higher" ? "#c0392b" : "#1e7b4a";
}

// Walks a chart's rows, calling group(y, op) for each operating-point header and row(y, r).
template <class G, class R>
int walk(const Chart& c, int y, G group, R row) {
  double last = -1;
  y += kHead;
  for (auto* r : c.rows) {
    if (r->target_fmr != last) {
      last = r->target_fmr;
      group(y, *r);
      y += kGroupH;
    }
    row(y, *r);
    y += kRowH;
  }
  return y;
}

std::string svg_chart(const Chart& c) {
  const int h = chart_height(c);
  auto x = [&](double v) { return kLabelW + int(std::lround(std::min(v, c.xmax) / c.xmax * kPlotW)); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(kW) + "\" height=\"" + std::to_string(h) +
                  "\" role=\"img\" aria-label=\"" + esc(c.title) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<text x=\"4\" y=\"20\" font-size=\"15\" font-weight=\"bold\">" + esc(c.title) + "</text>\n";
  const int top = kHead - 6, bottom = h - kAxisH + 4;
  for (int i = 0; i <= 5; ++i) {
    const double v = c.xmax * i / 5;
    s += "<line x1=\"" + std::to_string(x(v)) + "\" y1=\"" + std::to_string(top) + "\" x2=\"" + std::to_string(x(v)) + "\" y2=\"" +
         std::to_string(bottom) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + std::to_string(x(v)) + "\" y=\"" + std::to_string(bottom + 16) + "\" text-anchor=\"middle\" fill=\"#444\">" +
         esc(tick(v, c.xmax / 5)) + "</text>\n";
  }
  walk(c, 0, [&](int y, const RateRow& r) {
    s += "<text x=\"4\" y=\"" + std::to_string(y + 15) + "\" font-weight=\"bold\" fill=\"#333\">at FMR target " + sci(r.target_fmr) +
         " (threshold " + fmt("%.4f", r.threshold) + ")</text>\n";
  }, [&](int y, const RateRow& r) {
    const int cy = y + 11;
    const char* colour = colour_of(r);
    s += "<text x=\"16\" y=\"" + std::to_string(cy + 4) + "\" fill=\"" + colour + "\">" + esc(r.cohort) + "</text>\n";
    if (r.trials) {
      s += "<line x1=\"" + std::to_string(x(r.ci.low)) + "\" y1=\"" + std::to_string(cy) + "\" x2=\"" + std::to_string(x(r.ci.high)) +
           "\" y2=\"" + std::to_string(cy) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
      for (double v : {r.ci.low, r.ci.high})
        if (v <= c.xmax) s += "<line x1=\"" + std::to_string(x(v)) + "\" y1=\"" + std::to_string(cy - 5) + "\" x2=\"" + std::to_string(x(v)) + "\" y2=\"" +
             std::to_string(cy + 5) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
      s += "<circle cx=\"" + std::to_string(x(r.rate)) + "\" cy=\"" + std::to_string(cy) + "\" r=\"4.5\" fill=\"" +
           (r.too_small ? "white" : colour) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
    }
    s += "<text x=\"" + std::to_string(kLabelW + kPlotW + 14) + "\" y=\"" + std::to_string(cy + 4) + "\" fill=\"" + colour + "\">" +
         esc(r.trials ? row_text(r) : "no pairs") + "</text>\n";
  });
  return s + "</svg>\n";
}

}  // namespace

nlohmann::json cohort_report_json(const CohortReport& r) {
  nlohmann::json ops = nlohmann::json::array(), attrs = nlohmann::json::array();
  for (const auto& o : r.ops) ops.push_back({{"target_fmr", o.target_fmr}, {"threshold", o.threshold}});
  for (const auto& a : r.attributes) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& x : a.rows) {
      nlohmann::json j = {{"metric", x.metric}, {"target_fmr", x.target_fmr}, {"threshold", x.threshold}, {"cohort", x.cohort},
                          {"kind", x.kind}, {"errors", x.errors}, {"trials", x.trials}, {"no_face", x.no_face}, {"rate", x.rate},
                          {"ci_low", x.ci.low}, {"ci_high", x.ci.high}, {"wilson_low", x.wilson.low}, {"wilson_high", x.wilson.high},
                          {"n_too_small", x.too_small}, {"tested", x.tested}, {"significant", x.significant}};
      if (x.tested) {
        j["p_value"] = x.p_value;
        j["p_holm"] = x.p_adjusted;
        j["direction"] = x.significant ? x.direction : "";
      }
      if (x.kind == kCohortRow) j["rest"] = {{"errors", x.rest_errors}, {"trials", x.rest_trials}, {"rate", x.rest_rate}};
      rows.push_back(j);
    }
    attrs.push_back({{"attribute", a.attribute}, {"cohorts", a.cohorts}, {"rows", rows}});
  }
  return {{"command", r.command}, {"model", r.model}, {"calibration", r.calibration}, {"pairs_file", r.pairs_file},
          {"labels_file", r.labels_file}, {"pairs", r.pairs}, {"images", r.images}, {"images_without_face", r.images_without_face},
          {"interval", "clopper-pearson"}, {"confidence", r.options.confidence},
          {"test", "fisher-exact-two-sided, cohort vs the other labelled cohorts pooled, holm-adjusted across cohorts"},
          {"alpha", r.options.alpha}, {"min_trials", r.options.min_trials}, {"operating_points", ops}, {"attributes", attrs}};
}

std::string cohort_report_html(const CohortReport& r) {
  const std::string conf = fmt("%.0f", 100 * r.options.confidence);
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>facevault: accuracy per cohort</title>\n"
      "<style>body{font-family:sans-serif;max-width:960px;margin:1.5em auto;color:#222;line-height:1.4}"
      "table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
      "td{white-space:nowrap}td:first-child,th:first-child,td.l{text-align:left}td.l{white-space:normal}.caveat{background:#fff6e0;border-left:4px solid #e0a000;padding:0.6em 1em}"
      ".higher{color:#c0392b;font-weight:bold}.lower{color:#1e7b4a;font-weight:bold}.small{color:#888}dt{font-weight:bold}code{background:#f3f3f3}</style></head><body>\n"
      "<h1>Accuracy per cohort</h1>\n"
      "<p class=\"caveat\"><b>How to read this.</b> Each rate is measured on the pairs listed, no more: a rate from a few "
      "hundred pairs can easily be off by a factor of two, which is what the " + conf + " % intervals show. "
      "A cohort flagged as differing is unlikely to differ by chance alone on these pairs; an unflagged cohort is not shown "
      "to be equal &mdash; small counts cannot show that. Cohort labels were given by the evaluator; facevault never infers "
      "sex, age, skin tone or any other attribute. Results on this data set say little about another population or other "
      "capture conditions: measure on your own data.</p>\n<table>\n";
  auto meta = [&](const std::string& k, const std::string& v) { h += "<tr><th>" + esc(k) + "</th><td class=\"l\">" + esc(v) + "</td></tr>\n"; };
  meta("command", r.command);
  meta("model", r.model);
  meta("calibration", r.calibration);
  meta("pairs", r.pairs_file + " (" + std::to_string(r.pairs) + " pairs, " + std::to_string(r.images) + " images, " +
                    std::to_string(r.images_without_face) + " without a face found)");
  meta("labels", r.labels_file);
  std::string ops;
  for (const auto& o : r.ops) ops += (ops.empty() ? "" : "; ") + ("FMR " + sci(o.target_fmr) + " → threshold " + fmt("%.4f", o.threshold));
  meta("operating points", ops);
  h += "</table>\n";
  const auto charts = charts_of(r);
  for (size_t i = 0; i < charts.size(); ++i) {
    h += svg_chart(charts[i]);
    h += "<table><tr><th>cohort</th><th>FMR target</th><th>errors / trials</th><th>rate</th><th>" + conf +
         " % CI</th><th>no face</th><th>other cohorts</th><th>p (Holm)</th><th>status</th></tr>\n";
    for (auto* x : charts[i].rows) {
      const std::string cls = x->too_small ? " class=\"small\"" : x->significant ? " class=\"" + x->direction + "\"" : "";
      h += std::string("<tr") + cls + "><td>" + esc(x->cohort) +
           "</td><td>" + sci(x->target_fmr) + "</td><td>" + std::to_string(x->errors) + " / " + std::to_string(x->trials) + "</td><td>" +
           pct(x->rate) + "</td><td>" + pct(x->ci.low) + " – " + pct(x->ci.high) + "</td><td>" + std::to_string(x->no_face) + "</td><td>" +
           (x->kind == kCohortRow ? pct(x->rest_rate) + " (" + std::to_string(x->rest_errors) + " / " + std::to_string(x->rest_trials) + ")" : "") +
           "</td><td>" + (x->tested ? fmt("%.3g", x->p_adjusted) : "") + "</td><td>" + esc(status_of(*x)) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  h += "<h2>Definitions</h2>\n<dl>\n"
       "<dt>Operating point</dt><dd>The vault's false-match-rate setting (config <code>search_max_fmr</code>, default 1e-3) turned into a "
       "similarity threshold by the embedder's calibration table, as a search does. A pair matches when its similarity is at or above the threshold.</dd>\n"
       "<dt>FNMR of a cohort</dt><dd>Genuine pairs (two images of one person) of that cohort that do not match, over all its genuine pairs. "
       "A pair where no face was found counts as a non-match: the person would be turned away.</dd>\n"
       "<dt>FMR of a cohort</dt><dd>Impostor pairs (two different people) where <em>both</em> people belong to the cohort and the pair matches, "
       "over all such pairs. Impostor pairs of people from different cohorts are counted in their own rows (&ldquo;a vs b&rdquo;), "
       "pairs with an unlabelled image in &ldquo;unlabelled&rdquo;. Impostor pairs where no face was found are left out.</dd>\n"
       "<dt>Interval</dt><dd>" + conf + " % Clopper-Pearson (exact binomial): its coverage is never below " + conf + " %, however small the count "
       "(Wilson's, narrower, is in the JSON).</dd>\n"
       "<dt>Flag</dt><dd>Two-sided Fisher's exact test of the cohort against the other labelled cohorts pooled, p-values Holm-adjusted "
       "across the cohorts of one attribute (per metric and operating point; with two cohorts it is a single test); flagged when the adjusted "
       "p &lt; " + fmt("%g", r.options.alpha) + ".</dd>\n"
       "<dt>n too small</dt><dd>Fewer than " + std::to_string(r.options.min_trials) + " pairs: the rate and interval are shown, no test is made.</dd>\n"
       "</dl>\n</body></html>\n";
  return h;
}

Status write_cohort_png(const CohortReport& r, const std::filesystem::path& path) {
  const auto charts = charts_of(r);
  int total = 10;
  for (const auto& c : charts) total += chart_height(c) + 10;
  cv::Mat img(std::max(total, 40), kW, CV_8UC3, cv::Scalar(255, 255, 255));
  auto bgr = [](const RateRow& x) {  // colour_of as BGR
    const std::string c = colour_of(x);
    auto hex = [&](size_t i) { return double(std::stoi(c.substr(i, 2), nullptr, 16)); };
    return cv::Scalar(hex(5), hex(3), hex(1));
  };
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  int y0 = 10;
  for (const auto& c : charts) {
    const int h = chart_height(c);
    auto x = [&](double v) { return kLabelW + int(std::lround(std::min(v, c.xmax) / c.xmax * kPlotW)); };
    cv::putText(img, ascii(c.title), {4, y0 + 20}, font, 0.55, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    for (int i = 0; i <= 5; ++i) {
      const double v = c.xmax * i / 5;
      cv::line(img, {x(v), y0 + kHead - 6}, {x(v), y0 + h - kAxisH + 4}, cv::Scalar(221, 221, 221));
      cv::putText(img, ascii(tick(v, c.xmax / 5)), {x(v) - 16, y0 + h - kAxisH + 20}, font, 0.4, cv::Scalar(68, 68, 68), 1, cv::LINE_AA);
    }
    walk(c, y0, [&](int y, const RateRow& x0) {
      cv::putText(img, "at FMR target " + sci(x0.target_fmr) + " (threshold " + fmt("%.4f", x0.threshold) + ")", {4, y + 15}, font, 0.45,
                  cv::Scalar(51, 51, 51), 1, cv::LINE_AA);
    }, [&](int y, const RateRow& row) {
      const int cy = y + 11;
      const auto col = bgr(row);
      cv::putText(img, ascii(row.cohort), {16, cy + 5}, font, 0.45, col, 1, cv::LINE_AA);
      if (row.trials) {
        cv::line(img, {x(row.ci.low), cy}, {x(row.ci.high), cy}, col, 2);
        for (double v : {row.ci.low, row.ci.high}) if (v <= c.xmax) cv::line(img, {x(v), cy - 5}, {x(v), cy + 5}, col, 2);
        if (!row.too_small) cv::circle(img, {x(row.rate), cy}, 5, col, cv::FILLED, cv::LINE_AA);
        else { cv::circle(img, {x(row.rate), cy}, 5, cv::Scalar(255, 255, 255), cv::FILLED); cv::circle(img, {x(row.rate), cy}, 5, col, 2, cv::LINE_AA); }
      }
      cv::putText(img, ascii(row.trials ? row_text(row) : "no pairs"), {kLabelW + kPlotW + 14, cy + 5}, font, 0.4, col, 1, cv::LINE_AA);
    });
    y0 += h + 10;
  }
  try {
    if (!cv::imwrite(path.string(), img)) return io_error("cannot write " + path.string());
  } catch (const cv::Exception& e) {
    return io_error("cannot write " + path.string() + ": " + e.what());
  }
  return Status::ok();
}

}  // namespace fv::eval
