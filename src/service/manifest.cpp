// The batch manifest (CSV) and the choice of the face to enroll from a photo.
#include <fstream>
#include <sstream>

#include "service/service.h"

namespace fv::service {

namespace fs = std::filesystem;

Result<int> choose_enrollment_face(const std::vector<face::Face>& faces, int face_index) {
  if (faces.empty()) return failed_precondition("no face found in the photo");
  auto reasons = [](const face::Face& f) {
    std::string r;
    for (auto& x : f.quality.reasons) r += (r.empty() ? "" : "; ") + x;
    return r.empty() ? std::string("below the enrollment quality thresholds") : r;
  };
  if (face_index >= 0) {
    if (face_index >= static_cast<int>(faces.size()))
      return invalid_argument("face index " + std::to_string(face_index) + " out of range: the photo has " +
                              std::to_string(faces.size()) + " face(s)");
    if (!faces[face_index].quality.acceptable)
      return failed_precondition("face " + std::to_string(face_index) + " is not good enough to enroll: " +
                                 reasons(faces[face_index]));
    return face_index;
  }
  std::vector<int> ok;
  for (size_t i = 0; i < faces.size(); ++i)
    if (faces[i].quality.acceptable) ok.push_back(static_cast<int>(i));
  if (ok.size() == 1) return ok[0];
  if (ok.empty()) {
    if (faces.size() == 1) return failed_precondition("the face is not good enough to enroll: " + reasons(faces[0]));
    return failed_precondition("none of the " + std::to_string(faces.size()) + " faces is good enough to enroll");
  }
  return failed_precondition("ambiguous photo: " + std::to_string(ok.size()) +
                             " faces could be enrolled; choose one with --face INDEX (0-based, best detection first)");
}

Result<std::vector<BatchRow>> read_manifest(const fs::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) return not_found("cannot open manifest " + csv.string());
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return io_error("read error on manifest " + csv.string());
  return parse_manifest(text, csv);
}

Result<std::vector<BatchRow>> parse_manifest(std::string_view text, const fs::path& csv) {
  std::vector<BatchRow> rows;
  int line_no = 0;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    // Simple CSV: fields separated by commas, optionally in double quotes ("" for a quote).
    std::vector<std::string> f;
    std::string cur;
    bool q = false;
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (q) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') { cur += '"'; ++i; }
        else if (c == '"') q = false;
        else cur += c;
      } else if (c == '"') q = true;
      else if (c == ',') { f.push_back(cur); cur.clear(); }
      else cur += c;
    }
    f.push_back(cur);
    if (rows.empty() && line_no == 1 && !f.empty() && (f[0] == "image" || f[0] == "path")) continue;  // header
    if (f.size() < 3) return invalid_argument(csv.string() + ":" + std::to_string(line_no) + ": expected image,subject,basis[,provenance]");
    BatchRow r;
    r.line = line_no;
    r.image = f[0];
    if (!r.image.empty() && fs::path(r.image).is_relative()) r.image = (csv.parent_path() / r.image).string();
    r.subject_ref = f[1];
    try {
      size_t used = 0;
      r.basis_id = std::stoll(f[2], &used);
      if (used != f[2].size()) throw std::invalid_argument("x");
    } catch (...) {
      return invalid_argument(csv.string() + ":" + std::to_string(line_no) + ": basis id '" + f[2] + "' is not a number");
    }
    if (f.size() > 3) r.provenance = f[3];
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace fv::service
