// Runs the face pipeline over many images on N worker threads (one pipeline each) and hands
// the results back in input order, so output is deterministic whatever the thread count.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "face/pipeline.h"
#include "image/decode.h"

namespace fv::cli {

struct ImageResult {
  std::string file;
  Status status;  // not ok: the file could not be read, decoded or analyzed
  int width = 0, height = 0;
  std::vector<face::Face> faces;
};

struct BatchOptions {
  int threads = 1;
  bool embed = false;
  bool progress = false;  // a progress bar on stderr
  face::PipelineOptions pipeline;
  image::DecodeLimits limits;
};

// Calls `emit` once per file, in order, from the calling thread. Returns a status only when
// the pipeline cannot be built (missing models); per-file failures go to emit.
Status run_batch(const std::vector<std::string>& files, const BatchOptions& options,
                 const std::function<void(const ImageResult&)>& emit);

// Reads one path per line (blank lines and lines starting with '#' skipped).
Result<std::vector<std::string>> read_list_file(const std::string& path);

}  // namespace fv::cli
