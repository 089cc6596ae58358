// The catalog's source images, faces (templates, sealed), the gallery's rows, the generation
// counters and the opt-out registry.
#include "vault/catalog.h"

namespace fv::vault {

Result<int64_t> Catalog::insert_source_image(const NewSourceImage& img) {
  FV_ASSIGN_OR_RETURN(Stmt ii, db_->prepare(
      "INSERT INTO source_image(subject_id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image)"
      " VALUES(?,?,?,?,?,?,?,?,?,?)"));
  ii.bind_all(img.subject_id, img.basis_id, img.sha256, img.bytes, img.format, img.supplied_by, img.method, img.source,
              img.received_at);
  ii.bind_null(10);
  FV_RETURN_IF_ERROR(ii.run());
  return db_->last_insert_rowid();
}

Status Catalog::seal_source_image(int64_t image_id, const Bytes& sealed) {
  FV_ASSIGN_OR_RETURN(Stmt ki, db_->prepare("UPDATE source_image SET image=? WHERE id=?"));
  ki.bind_all(sealed, image_id);
  return ki.run();
}

Result<int64_t> Catalog::insert_face(const NewFace& f) {
  // The template is sealed once the row id is known (seal_face).
  FV_ASSIGN_OR_RETURN(Stmt fi, db_->prepare(
      "INSERT INTO face(subject_id, image_id, basis_id, model_id, model_version, dim, template, box, quality, created_at)"
      " VALUES(?,?,?,?,?,?,X'',?,?,?)"));
  fi.bind_all(f.subject_id, f.image_id, f.basis_id, f.model_id, f.model_version, f.dim, f.box_json, f.quality_json,
              f.created_at);
  FV_RETURN_IF_ERROR(fi.run());
  return db_->last_insert_rowid();
}

Status Catalog::seal_face(int64_t face_id, const Bytes& sealed_template) {
  FV_ASSIGN_OR_RETURN(Stmt ft, db_->prepare("UPDATE face SET template=? WHERE id=?"));
  ft.bind_all(sealed_template, face_id);
  return ft.run();
}

Status Catalog::for_each_source_image(int64_t subject_id, const std::function<Status(const SourceImageRow&)>& fn) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT id, basis_id, sha256, bytes, format, supplied_by, method, source, received_at, image FROM source_image "
      "WHERE subject_id=? ORDER BY id"));
  q.bind(1, subject_id);
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    SourceImageRow r{q.i64(0), q.i64(1), q.text(2), q.i64(3), q.text(4), q.text(5), q.text(6), q.text(7), q.text(8),
                     std::nullopt};
    if (!q.is_null(9)) r.sealed_image = q.blob(9);
    FV_RETURN_IF_ERROR(fn(r));
  }
  return Status::ok();
}

Status Catalog::for_each_face(int64_t subject_id, const std::function<Status(const FaceRow&)>& fn) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT id, image_id, basis_id, model_id, model_version, dim, box, quality, created_at, template FROM face "
      "WHERE subject_id=? ORDER BY id"));
  q.bind(1, subject_id);
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    FaceRow f{q.i64(0), std::nullopt, q.i64(2), q.text(3), static_cast<int>(q.i64(4)), q.i64(5), q.text(6), q.text(7),
              q.text(8), q.blob(9)};
    if (!q.is_null(1)) f.image_id = q.i64(1);
    FV_RETURN_IF_ERROR(fn(f));
  }
  return Status::ok();
}

Result<std::vector<ModelCount>> Catalog::faces_by_model() {
  FV_ASSIGN_OR_RETURN(Stmt c, db_->prepare("SELECT model_id, model_version, count(*) FROM face GROUP BY 1, 2"));
  std::vector<ModelCount> out;
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, c.step());
    if (!row) break;
    out.push_back({c.text(0), static_cast<int>(c.i64(1)), c.i64(2)});
  }
  return out;
}

Status Catalog::faces_for_gallery(const std::function<Status(const GalleryFaceRow&)>& fn) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "SELECT f.id, f.subject_id, s.uid, s.ref, f.model_id, f.model_version, f.template, k.wrapped, f.basis_id FROM face f "
      "JOIN subject s ON s.id=f.subject_id JOIN subject_key k ON k.subject_id=f.subject_id ORDER BY f.subject_id, f.id"));
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    GalleryFaceRow r{s.i64(0), s.i64(1), s.i64(8), s.text(2), s.text(3), s.text(4), static_cast<int>(s.i64(5)),
                     s.blob(6), s.blob(7)};
    FV_RETURN_IF_ERROR(fn(r));
  }
  return Status::ok();
}

Result<int64_t> Catalog::generation(Generation g) {
  const std::string key = g == Generation::kGallery ? "gallery_generation" : "eligibility_generation";
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT CAST(value AS INTEGER) FROM meta WHERE key=?"));
  q.bind(1, key);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) return corrupt_data("the vault has no " + key);  // open() migrates: it always has
  return q.i64(0);
}

Result<int64_t> Catalog::optout_count() { return db_->query_int("SELECT count(*) FROM optout"); }

Result<bool> Catalog::has_optout(const std::string& uid) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT 1 FROM optout WHERE uid=?"));
  q.bind(1, uid);
  return q.step();
}

Status Catalog::for_each_optout(const std::function<Status(const OptoutRow&)>& fn) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare("SELECT uid, model_id, model_version, template FROM optout ORDER BY id"));
  for (;;) {
    FV_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) break;
    FV_RETURN_IF_ERROR(fn(OptoutRow{q.text(0), q.text(1), static_cast<int>(q.i64(2)), q.blob(3)}));
  }
  return Status::ok();
}

Status Catalog::insert_optout(const NewOptout& o) {
  FV_ASSIGN_OR_RETURN(Stmt s, db_->prepare(
      "INSERT INTO optout(uid, model_id, model_version, template, created_at) VALUES(?,?,?,?,?)"));
  s.bind_all(o.uid, o.model_id, o.model_version, o.sealed_template, o.created_at);
  return s.run();
}

Result<int64_t> Catalog::incomparable_optouts(const std::string& embedder_model_id) {
  FV_ASSIGN_OR_RETURN(Stmt q, db_->prepare(
      "SELECT count(*) FROM optout o WHERE o.model_id <> ?1 OR (EXISTS (SELECT 1 FROM face) AND NOT EXISTS "
      "(SELECT 1 FROM face f WHERE f.model_id = o.model_id AND f.model_version = o.model_version))"));
  q.bind(1, embedder_model_id);
  FV_ASSIGN_OR_RETURN(bool row, q.step());
  return row ? q.i64(0) : 0;
}

}  // namespace fv::vault
