// Identification figures of NIST FRTE 1:N from candidate lists, so that an approximate index
// and the exact scan are judged on what an investigator sees rather than on recall alone:
// whether the mate comes first, how many mates a threshold set for a false-positive
// identification rate (FPIR) misses (FNIR), and whether every candidate above the vault's
// search threshold is in the list.
#pragma once

#include <cstddef>
#include <vector>

#include "index/vector_index.h"

namespace fv::index {

// One search's candidates, best first.
struct CandidateList {
  std::vector<Id> ids;
  std::vector<float> scores;
};

struct OperatingPointFigures {
  double fpir_target = 0;
  double threshold = 0;  // the lowest score whose measured FPIR is <= the target
  double fpir = 0;       // measured at that threshold
  double fnir = 0;       // mated searches whose mate is not among the candidates scoring >= threshold
};

struct IdentificationFigures {
  size_t mated = 0, nonmated = 0;
  double mate_rank1 = 0;   // mated searches whose first candidate is the mate
  double mate_in_list = 0; // ... whose mate is anywhere in the list
  std::vector<OperatingPointFigures> points;  // one per FPIR target, in the order asked
};

// mated[i] is the list of a search whose mate is mates[i]; nonmated holds the lists of
// searches for people who are not in the gallery. FPIR counts a non-mated search as a false
// positive when its best candidate scores >= the threshold (an empty list never does).
IdentificationFigures identification_figures(const std::vector<CandidateList>& mated, const std::vector<Id>& mates,
                                             const std::vector<CandidateList>& nonmated,
                                             const std::vector<double>& fpir_targets = {0.01, 0.001});

// Of the candidates in `truth` (exact lists) scoring >= threshold, the share that `got` (the
// index under test, same searches in the same order) returns too. 1 when truth has none.
double recall_above_threshold(const std::vector<CandidateList>& truth, const std::vector<CandidateList>& got,
                              double threshold, size_t* counted = nullptr);

}  // namespace fv::index
