// JSON renderings shared by the CLI commands.
#pragma once

#include <nlohmann/json.hpp>

#include "cli/batch.h"
#include "eval/lfw.h"

namespace fv::cli {

nlohmann::ordered_json quality_json(const face::Quality& q);
nlohmann::ordered_json face_json(const face::Face& f, bool with_template);
// {"file", "width", "height", "faces": [...]} or {"file", "error"}.
nlohmann::ordered_json image_result_json(const ImageResult& r, bool with_template);
nlohmann::ordered_json verification_json(const eval::VerificationReport& r);

}  // namespace fv::cli
