// `facevault eval ident` (protocol, output, DET files) and `facevault bench index` through the
// binary, on synthetic templates; and the LFW figure when the data and cached templates exist.
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/paths.h"
#include "support/run.h"

namespace fv::test {
namespace {

namespace fs = std::filesystem;

std::vector<float> unit(std::mt19937& rng, size_t d) {
  std::normal_distribution<float> n;
  std::vector<float> v(d);
  double s = 0;
  for (auto& x : v) { x = n(rng); s += x * x; }
  for (auto& x : v) x /= static_cast<float>(std::sqrt(s));
  return v;
}

// An LFW-layout folder: 30 identities with 3 images, 20 with one; templates in a JSONL file
// as `facevault embed` writes them (the image files themselves are never read).
struct FakeLfw {
  fs::path root, jsonl;
  FakeLfw() {
    root = fs::temp_directory_path() / ("fv_ident_" + std::to_string(::getpid()));
    fs::remove_all(root);
    std::mt19937 rng(5);
    const size_t d = 64;
    std::ofstream out(root.string() + ".jsonl");
    jsonl = root.string() + ".jsonl";
    for (int p = 0; p < 50; ++p) {
      const std::string name = "Person_" + std::to_string(100 + p);
      fs::create_directories(root / name);
      const auto centre = unit(rng, d);
      for (int i = 1; i <= (p < 30 ? 3 : 1); ++i) {
        char file[64];
        std::snprintf(file, sizeof file, "%s_%04d.jpg", name.c_str(), i);
        std::ofstream(root / name / file) << "x";
        auto noise = unit(rng, d);
        std::vector<float> t(d);
        double s = 0;
        for (size_t k = 0; k < d; ++k) { t[k] = centre[k] + 0.5f * noise[k]; s += t[k] * t[k]; }
        for (auto& x : t) x /= static_cast<float>(std::sqrt(s));
        nlohmann::json j = {{"file", (root / name / file).string()}, {"width", 250}, {"height", 250},
                            {"faces", {{{"box", {100, 100, 50, 50}}, {"template", t}}}}};
        out << j.dump() << "\n";
      }
    }
  }
  ~FakeLfw() {
    fs::remove_all(root);
    fs::remove(jsonl);
  }
};

TEST(EvalIdent, ProtocolCountsAndOutputs) {
  FakeLfw lfw;
  const fs::path csv = lfw.root.string() + ".csv", png = lfw.root.string() + ".png";
  for (const char* kind : {"exact", "float"}) {
    auto r = run_facevault({"eval", "ident", "--root", lfw.root.string(), "--templates", lfw.jsonl, "--index", kind,
                            "--json", "--det-csv", csv.string(), "--det-png", png.string()});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["gallery"], 30);
    EXPECT_EQ(j["mated_probes"], 60);
    EXPECT_EQ(j["nonmated_probes"], 20);
    EXPECT_DOUBLE_EQ(j["rank1"].get<double>(), 1.0) << kind;
    EXPECT_DOUBLE_EQ(j["rank10"].get<double>(), 1.0);
    EXPECT_TRUE(j["fpir_1e-2"].contains("fnir"));
    EXPECT_LE(j["fpir_1e-2"]["fpir"].get<double>(), 0.01);
    EXPECT_TRUE(fs::exists(csv));
    EXPECT_TRUE(fs::exists(png));
    std::ifstream in(csv);
    std::string header;
    std::getline(in, header);
    EXPECT_EQ(header, "threshold,fpir,fnir");
  }
  fs::remove(csv);
  fs::remove(png);
}

// An approximate index is reported beside the exact scan of the same gallery and probes.
TEST(EvalIdent, ApproximateIndexBesideTheExactScan) {
  FakeLfw lfw;
  auto r = run_facevault({"eval", "ident", "--root", lfw.root.string(), "--templates", lfw.jsonl, "--index", "hnsw", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto& s = j["side_by_side"];
  ASSERT_TRUE(s.contains("hnsw") && s.contains("exact_int8")) << r.out;
  EXPECT_EQ(s["probes_with_a_face"]["mated"], 60);
  EXPECT_EQ(s["probes_with_a_face"]["nonmated"], 20);
  for (const char* k : {"hnsw", "exact_int8"}) {
    EXPECT_DOUBLE_EQ(s[k]["rank1"].get<double>(), 1.0) << k;
    // The same gallery and probes: the graph (re-ranked in float32) and the int8 scan put the
    // FPIR threshold on the same best non-mated score, to int8 rounding.
    EXPECT_NEAR(s[k]["fpir_1e-2"]["threshold"].get<double>(), s["exact_int8"]["fpir_1e-2"]["threshold"].get<double>(), 0.02) << k;
    EXPECT_DOUBLE_EQ(s[k]["fpir_1e-2"]["fnir"].get<double>(), s["exact_int8"]["fpir_1e-2"]["fnir"].get<double>()) << k;
  }
  // The exact index alone has nothing to stand beside.
  auto e = run_facevault({"eval", "ident", "--root", lfw.root.string(), "--templates", lfw.jsonl, "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_TRUE(nlohmann::json::parse(e.out)["side_by_side"].is_null());
}

TEST(BenchIndex, PrintsOneJsonObjectWithTheDocumentedFields) {
  for (const char* kind : {"exact", "ann", "ivf", "hnsw"}) {
    auto r = run_facevault({"bench", "index", "--size", "20000", "--dim", "128", "--kind", kind, "--queries", "20",
                            "--nlist", "64", "--removals", "20"});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    for (const char* f : {"p50_ms", "p99_ms", "qps", "recall_at_1", "recall_at_10", "bytes_per_template", "build_s"})
      EXPECT_TRUE(j.contains(f)) << kind << " lacks " << f;
    // ann is the approximate index a vault uses (the IVF), at its default share of cells.
    if (std::string(kind) == "ann") {
      EXPECT_EQ(j["kind"], "ivf");
      EXPECT_EQ(j["nprobe"], 32) << "half of 64 cells";
      EXPECT_EQ(j["rerank"], 100);
    }
  }
  EXPECT_NE(run_facevault({"bench", "index", "--size", "20000", "--kind", "bogus"}).exit_code, 0);
}

// Real LFW, from templates cached by `facevault embed --list … > out/lfw_templates.jsonl`
// (embedding all of LFW takes minutes). The int8 index must cost nothing against float32;
// the rank-1 floor guards the measured 98.80 % (docs/benchmarks.md: the 99 % target
// is not reached by the MobileFaceNet embedder on this protocol, whatever the index).
TEST(EvalIdent, LfwInt8CostsNothingAgainstFloat) {
  const fs::path root = data_dir() / "lfw" / "images";
  FV_REQUIRE_PATH(root);
  const fs::path cached = fs::path(FACEVAULT_SOURCE_DIR) / "out" / "lfw_templates.jsonl";
  FV_REQUIRE_PATH(cached);
  std::map<std::string, nlohmann::json> by;
  for (const char* kind : {"exact", "float"}) {
    auto r = run_facevault({"eval", "ident", "--root", root.string(), "--templates", cached.string(), "--index", kind, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    by[kind] = nlohmann::json::parse(r.out);
  }
  EXPECT_EQ(by["exact"]["gallery"], 1680);
  EXPECT_GE(by["exact"]["rank1"].get<double>(), 0.985);
  EXPECT_NEAR(by["exact"]["rank1"].get<double>(), by["float"]["rank1"].get<double>(), 0.001);
  EXPECT_NEAR(by["exact"]["fpir_1e-2"]["fnir"].get<double>(), by["float"]["fpir_1e-2"]["fnir"].get<double>(), 0.002);
  EXPECT_LT(by["exact"]["fpir_1e-2"]["fnir"].get<double>(), 0.06);
}

}  // namespace
}  // namespace fv::test
