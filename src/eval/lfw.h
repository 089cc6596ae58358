// LFW verification protocol: pairs files, thresholds, accuracy, TAR@FAR and ROC points.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::eval {

struct LfwPair {
  std::string name_a;
  int index_a = 0;
  std::string name_b;
  int index_b = 0;
  bool same = false;
  int fold = 0;
};

struct PairsFile {
  int folds = 1;
  std::vector<LfwPair> pairs;
};

// View-1 files start with the pair count; View-2's pairs.txt with "folds<TAB>pairs-per-class".
Result<PairsFile> read_pairs(const std::filesystem::path& path);
std::filesystem::path lfw_image_path(const std::filesystem::path& root, const std::string& name, int index);

// One scored pair: `score` is meaningless when `missing` (a face was not found).
struct ScoredPair {
  double score = 0;
  bool same = false;
  bool missing = false;
  int fold = 0;
};

struct RocPoint {
  double far = 0;
  double tar = 0;
  double threshold = 0;
};

struct VerificationReport {
  size_t pairs = 0;
  size_t missing = 0;        // pairs with a face not found: counted as errors
  double threshold = 0;      // fitted on the training pairs
  double accuracy = 0;       // on the test pairs, missing pairs counted wrong
  double accuracy_std = 0;   // across folds, when the file has folds
  int folds = 1;
  double tar_at_far_1e3 = 0;
  double auc = 0;
  std::vector<RocPoint> roc;
};

// Threshold maximising accuracy on `train` (midpoint between neighbouring scores).
double fit_threshold(const std::vector<ScoredPair>& train);
// Accuracy at `threshold`: score >= threshold means "same"; a missing pair is an error.
double accuracy_at(const std::vector<ScoredPair>& pairs, double threshold);
// Highest TAR with FAR <= far, and the threshold giving it.
RocPoint tar_at_far(const std::vector<ScoredPair>& pairs, double far);
std::vector<RocPoint> roc_curve(const std::vector<ScoredPair>& pairs);
double auc(const std::vector<ScoredPair>& pairs);

// Threshold from `train`, metrics on `test` (View-1 protocol).
VerificationReport evaluate_train_test(const std::vector<ScoredPair>& train, const std::vector<ScoredPair>& test);
// k-fold cross-validation over the folds recorded in the pairs (View-2 protocol).
VerificationReport evaluate_folds(const std::vector<ScoredPair>& pairs, int folds);

}  // namespace fv::eval
