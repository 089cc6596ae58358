#include "bench/harness/identification.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <unordered_set>

namespace fv::index {

IdentificationFigures identification_figures(const std::vector<CandidateList>& mated, const std::vector<Id>& mates,
                                             const std::vector<CandidateList>& nonmated,
                                             const std::vector<double>& fpir_targets) {
  IdentificationFigures f;
  f.mated = mated.size();
  f.nonmated = nonmated.size();
  // The mate's score when it is in the list; -inf when it is not (then no threshold finds it).
  std::vector<double> mate_score(mated.size(), -INFINITY);
  size_t first = 0, listed = 0;
  for (size_t i = 0; i < mated.size() && i < mates.size(); ++i) {
    const auto& ids = mated[i].ids;
    const auto it = std::find(ids.begin(), ids.end(), mates[i]);
    if (it == ids.end()) continue;
    ++listed;
    first += it == ids.begin();
    mate_score[i] = mated[i].scores[static_cast<size_t>(it - ids.begin())];
  }
  f.mate_rank1 = mated.empty() ? 0 : double(first) / mated.size();
  f.mate_in_list = mated.empty() ? 0 : double(listed) / mated.size();

  std::vector<double> top;
  for (const auto& l : nonmated) top.push_back(l.scores.empty() ? -INFINITY : l.scores.front());
  std::sort(top.begin(), top.end(), std::greater<>());
  for (double target : fpir_targets) {
    OperatingPointFigures p;
    p.fpir_target = target;
    // Just above the (⌊target·n⌋+1)-th best non-mated score: at most ⌊target·n⌋ false positives.
    const size_t allowed = static_cast<size_t>(std::floor(target * top.size()));
    p.threshold = allowed < top.size() ? std::nextafter(top[allowed], INFINITY) : -1.0;
    size_t at = 0;  // top is sorted best first: the false positives are a prefix
    while (at < top.size() && top[at] >= p.threshold) ++at;
    p.fpir = top.empty() ? 0 : double(at) / top.size();
    size_t miss = 0;
    for (double s : mate_score) miss += !(s >= p.threshold);
    p.fnir = mated.empty() ? 0 : double(miss) / mated.size();
    f.points.push_back(p);
  }
  return f;
}

double recall_above_threshold(const std::vector<CandidateList>& truth, const std::vector<CandidateList>& got,
                              double threshold, size_t* counted) {
  size_t want = 0, hit = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    std::unordered_set<Id> returned;
    if (q < got.size()) returned.insert(got[q].ids.begin(), got[q].ids.end());
    for (size_t i = 0; i < truth[q].ids.size(); ++i) {
      if (!(truth[q].scores[i] >= threshold)) continue;
      ++want;
      hit += returned.count(truth[q].ids[i]);
    }
  }
  if (counted) *counted = want;
  return want == 0 ? 1.0 : double(hit) / want;
}

}  // namespace fv::index
