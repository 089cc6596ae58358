// 1:1 comparison of two photos: which face of each is compared, and the decision at a
// false-match rate. The one rule shared by `facevault verify` and the service's verification.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "face/calibration.h"
#include "face/types.h"

namespace fv::face {

// The face a photo handed in for verification is about: the largest one that has a template
// (the subject is the one in front). -1 when no face has a template.
int verification_face(const std::vector<Face>& faces);

struct Comparison {
  double similarity = 0;               // cosine of the two templates, unrounded
  double threshold_fmr = 0;            // the false-match rate the decision is made at
  std::optional<double> threshold;     // the similarity threshold at that rate (absent without a table)
  std::optional<double> score_fmr;     // the false-match rate of this similarity (absent without a table)
  bool same = false;                   // similarity >= threshold (false without a table)
  std::string calibration;             // the table's source, empty without one
};

// `cal` may be null (a model without a calibration table): then only the similarity is given.
Comparison compare(const FaceTemplate& a, const FaceTemplate& b, const Calibration* cal, double fmr);

}  // namespace fv::face
