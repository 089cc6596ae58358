// facevault detect | embed: one JSON object per image per line.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/grammar.h"
#include "cli/json_out.h"

namespace fv::cli {

BatchOptions PipelineFlags::to_batch(bool embed) const {
  BatchOptions o;
  o.threads = threads;
  o.embed = embed;
  o.progress = !no_progress && (progress || isatty(STDERR_FILENO));
  o.pipeline.components.ultralight.tiling = !no_tiling;
  o.pipeline.components.ultralight.min_face = min_face;
  o.pipeline.components.ultralight.score_threshold = det_score;
  if (tile_score >= 0) o.pipeline.components.ultralight.pyramid_score_threshold = tile_score;
  o.pipeline.embedder = embedder;
  return o;
}

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& f) {
  cmd->add_option("--threads", f.threads, "worker threads, one pipeline each")->check(CLI::Range(1, 256));
  cmd->add_flag("--no-tiling", f.no_tiling, "one whole-frame detector pass (misses small faces in large photos)");
  cmd->add_option("--min-face", f.min_face, "smallest face height in pixels the detector looks for")->check(CLI::Range(8.0, 10000.0));
  cmd->add_option("--det-score", f.det_score, "detector score threshold of a single untiled pass (images no larger than one tile, --no-tiling; default 0.65)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--tile-score", f.tile_score, "detector score threshold of the pyramid (default 0.6, on a face's evidence: the mean of its best scales, each tile plain and mirrored)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--embedder", f.embedder,
                  "faceplugin-mobilefacenet-512 (default), faceplugin-mobilefacenet-512+flip (mirror-averaged), faceapi-dlib-resnet-128, fusion (both, one template), or fusion+flip (the most accurate)")
      ->check(CLI::IsMember({"faceplugin-mobilefacenet-512", "faceplugin-mobilefacenet-512+flip", "faceapi-dlib-resnet-128", "fusion", "fusion+flip"}));
  cmd->add_flag("--progress", f.progress, "progress bar on stderr even when it is not a terminal");
  cmd->add_flag("--no-progress", f.no_progress, "no progress bar");
}

namespace {

struct FacesArgs {
  std::vector<std::string> files;
  std::string list;
  PipelineFlags flags;
};

int run_faces(const FacesArgs& a, bool embed) {
  std::vector<std::string> files = a.files;
  if (!a.list.empty()) {
    auto l = read_list_file(a.list);
    if (!l.is_ok()) { std::cerr << "facevault: " << l.status().to_string() << "\n"; return kExitFailure; }
    files.insert(files.end(), l->begin(), l->end());
  }
  if (files.empty()) { std::cerr << "facevault: no images given (IMG… or --list FILE)\n"; return kExitUsage; }
  bool any_error = false;
  auto st = run_batch(files, a.flags.to_batch(embed), [&](const ImageResult& r) {
    any_error |= !r.status.is_ok();
    std::cout << image_result_json(r, embed).dump() << "\n";
  });
  std::cout.flush();
  if (!st.is_ok()) { std::cerr << "facevault: " << st.to_string() << "\n"; return kExitFailure; }
  return any_error ? kExitPartial : kExitOk;
}

}  // namespace

void add_face_commands(CLI::App& app, int& exit_code) {
  for (bool embed : {false, true}) {
    auto args = std::make_shared<FacesArgs>();
    auto* cmd = app.add_subcommand(embed ? "embed" : "detect",
                                   embed ? "find every face and print its biometric template (JSON lines)"
                                         : "find every face: box, score, 5 keypoints, quality (JSON lines)");
    cmd->add_option("images", args->files, "image files (JPEG, PNG, WebP, BMP, TIFF, PNM)");
    cmd->add_option("--list", args->list, "file with one image path per line");
    add_pipeline_flags(cmd, args->flags);
    add_json_noop_flag(cmd, "JSON lines (one object per image)");
    if (embed)
      set_examples(cmd, {"facevault embed --json photo.jpg",
                         "facevault embed --threads 2 --list photos.txt > templates.jsonl"});
    else
      set_examples(cmd, {"facevault detect --json group.jpg", "facevault detect --no-tiling a.jpg b.png"});
    cmd->callback([args, embed, &exit_code] { exit_code = run_faces(*args, embed); });
  }
}

}  // namespace fv::cli
