// JSON renderings shared by the CLI commands.
#pragma once

#include <nlohmann/json.hpp>

#include "cli/batch.h"
#include "eval/lfw.h"

namespace fv::cli {

nlohmann::json quality_json(const face::Quality& q);
nlohmann::json face_json(const face::Face& f, bool with_template);
// {"file", "width", "height", "faces": [...]} or {"file", "error"}.
nlohmann::json image_result_json(const ImageResult& r, bool with_template);
nlohmann::json verification_json(const eval::VerificationReport& r);

}  // namespace fv::cli
