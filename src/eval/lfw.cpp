#include "eval/lfw.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace fv::eval {

Result<PairsFile> read_pairs(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open pairs file " + path.string());
  PairsFile pf;
  std::string line;
  if (!std::getline(in, line)) return corrupt_data("empty pairs file " + path.string());
  std::istringstream head(line);
  int a = 0, b = 0;
  head >> a;
  int per_fold = 0;
  if (head >> b) { pf.folds = a; per_fold = 2 * b; }
  int lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    std::istringstream f(line);
    std::vector<std::string> t;
    for (std::string s; f >> s;) t.push_back(s);
    LfwPair p;
    auto index = [](const std::string& s, int& out) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && end == s.data() + s.size() && out > 0;
    };
    bool ok = false;
    if (t.size() == 3) {
      p = {t[0], 0, t[0], 0, true, 0};
      ok = index(t[1], p.index_a) && index(t[2], p.index_b);
    } else if (t.size() == 4) {
      p = {t[0], 0, t[2], 0, false, 0};
      ok = index(t[1], p.index_a) && index(t[3], p.index_b);
    } else {
      return corrupt_data(path.string() + ":" + std::to_string(lineno) + ": expected 3 or 4 fields");
    }
    if (!ok) return corrupt_data(path.string() + ":" + std::to_string(lineno) + ": image index is not a positive integer");
    p.fold = per_fold ? static_cast<int>(pf.pairs.size() / per_fold) : 0;
    pf.pairs.push_back(p);
  }
  if (pf.pairs.empty()) return corrupt_data("no pairs in " + path.string());
  return pf;
}

std::filesystem::path lfw_image_path(const std::filesystem::path& root, const std::string& name, int index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "_%04d.jpg", index);
  return root / name / (name + buf);
}

double accuracy_at(const std::vector<ScoredPair>& pairs, double threshold) {
  if (pairs.empty()) return 0;
  size_t correct = 0;
  for (const auto& p : pairs) {
    if (!p.missing && (p.score >= threshold) == p.same) ++correct;
  }
  return double(correct) / pairs.size();
}

double fit_threshold(const std::vector<ScoredPair>& train) {
  std::vector<const ScoredPair*> v;
  for (const auto& p : train) if (!p.missing) v.push_back(&p);
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->score < b->score; });
  // Sweep: threshold below v[i] accepts v[i..]. Correct = same pairs accepted + different rejected.
  size_t total_same = 0;
  for (auto* p : v) total_same += p->same;
  size_t same_below = 0, diff_below = 0, best = 0;
  double best_t = v.front()->score - 1e-6;
  best = total_same;  // threshold below everything
  for (size_t i = 0; i < v.size(); ++i) {
    same_below += v[i]->same;
    diff_below += !v[i]->same;
    if (i + 1 < v.size() && v[i + 1]->score == v[i]->score) continue;
    const size_t correct = diff_below + (total_same - same_below);
    if (correct > best) {
      best = correct;
      best_t = i + 1 < v.size() ? (v[i]->score + v[i + 1]->score) / 2 : v[i]->score + 1e-6;
    }
  }
  return best_t;
}

RocPoint tar_at_far(const std::vector<ScoredPair>& pairs, double far) {
  std::vector<double> impostor, genuine;
  size_t genuine_missing = 0;
  for (const auto& p : pairs) {
    if (p.same) { if (p.missing) ++genuine_missing; else genuine.push_back(p.score); }
    else if (!p.missing) impostor.push_back(p.score);
  }
  RocPoint r{far, 0, 0};
  if (impostor.empty()) return r;
  std::sort(impostor.rbegin(), impostor.rend());
  // Allowed false accepts: floor(far · N); the threshold sits just above the next impostor.
  const size_t allowed = static_cast<size_t>(std::floor(far * impostor.size() + 1e-9));
  r.threshold = allowed < impostor.size() ? std::nextafter(impostor[allowed], 1e9) : impostor.back();
  size_t accepted = 0;
  for (double g : genuine) accepted += g >= r.threshold;
  const size_t n_genuine = genuine.size() + genuine_missing;
  r.tar = n_genuine ? double(accepted) / n_genuine : 0;
  r.far = double(std::min(allowed, impostor.size())) / impostor.size();
  return r;
}

std::vector<RocPoint> roc_curve(const std::vector<ScoredPair>& pairs) {
  std::vector<RocPoint> out;
  for (double far : {1e-4, 1e-3, 1e-2, 1e-1}) out.push_back(tar_at_far(pairs, far));
  return out;
}

double auc(const std::vector<ScoredPair>& pairs) {
  // Probability a genuine pair outscores an impostor pair (ties count half); missing = −∞.
  std::vector<std::pair<double, bool>> v;
  for (const auto& p : pairs) v.push_back({p.missing ? -1e300 : p.score, p.same});
  std::sort(v.begin(), v.end());
  double n_imp = 0, n_gen = 0, wins = 0;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    double gen = 0, imp = 0;
    while (j < v.size() && v[j].first == v[i].first) { (v[j].second ? gen : imp) += 1; ++j; }
    wins += gen * n_imp + 0.5 * gen * imp;
    n_imp += imp;
    n_gen += gen;
    i = j;
  }
  return n_imp > 0 && n_gen > 0 ? wins / (n_imp * n_gen) : 0;
}

VerificationReport evaluate_train_test(const std::vector<ScoredPair>& train, const std::vector<ScoredPair>& test) {
  VerificationReport r;
  r.pairs = test.size();
  for (const auto& p : test) r.missing += p.missing;
  r.threshold = fit_threshold(train);
  r.accuracy = accuracy_at(test, r.threshold);
  r.roc = roc_curve(test);
  r.tar_at_far_1e3 = tar_at_far(test, 1e-3).tar;
  r.auc = auc(test);
  return r;
}

VerificationReport evaluate_folds(const std::vector<ScoredPair>& pairs, int folds) {
  VerificationReport r;
  r.pairs = pairs.size();
  r.folds = folds;
  for (const auto& p : pairs) r.missing += p.missing;
  std::vector<double> accs, thresholds;
  for (int k = 0; k < folds; ++k) {
    std::vector<ScoredPair> train, test;
    for (const auto& p : pairs) (p.fold == k ? test : train).push_back(p);
    if (test.empty()) continue;
    const double t = fit_threshold(train);
    thresholds.push_back(t);
    accs.push_back(accuracy_at(test, t));
  }
  double mean = 0, var = 0;
  for (double a : accs) mean += a;
  mean /= std::max<size_t>(1, accs.size());
  for (double a : accs) var += (a - mean) * (a - mean);
  r.accuracy = mean;
  r.accuracy_std = accs.size() > 1 ? std::sqrt(var / accs.size()) : 0;
  std::sort(thresholds.begin(), thresholds.end());
  r.threshold = thresholds.empty() ? 0 : thresholds[thresholds.size() / 2];
  r.roc = roc_curve(pairs);
  r.tar_at_far_1e3 = tar_at_far(pairs, 1e-3).tar;
  r.auc = auc(pairs);
  return r;
}

}  // namespace fv::eval
