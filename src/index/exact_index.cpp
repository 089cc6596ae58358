#include "index/exact_index.h"

#include <unordered_set>

#include "index/kernels.h"
#include "index/parallel.h"

namespace fv::index {
namespace {

constexpr size_t kBlock = 256;  // rows scored per kernel call (their int32 results stay in L1)
constexpr size_t kBatch = 16;   // queries scored together per pass over the gallery

struct PreparedQuery {
  std::vector<int8_t> q;
  float scale = 0;
  int32_t corr = 0;  // 128 · Σq: removes the offset of the offset-binary codes
};

PreparedQuery prepare(const float* v, size_t dim) {
  PreparedQuery p;
  p.q.resize(dim);
  p.scale = kernels::quantize_s8(v, dim, p.q.data());
  int32_t s = 0;
  for (int8_t x : p.q) s += x;
  p.corr = 128 * s;
  return p;
}

}  // namespace

ExactIndex::ExactIndex(size_t dim) : dim_(dim) {}

Status ExactIndex::add(std::span<const Id> ids, std::span<const float> vectors) {
  if (vectors.size() != ids.size() * dim_)
    return invalid_argument("add: " + std::to_string(vectors.size()) + " values for " + std::to_string(ids.size()) +
                            " ids of dimension " + std::to_string(dim_));
  std::unordered_set<Id> seen;
  for (Id id : ids)
    if (slot_.count(id) || !seen.insert(id).second) return invalid_argument("add: id " + std::to_string(id) + " is already in the index");
  const size_t n0 = ids_.size();
  codes_.resize((n0 + ids.size()) * dim_);
  scales_.resize(n0 + ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    scales_[n0 + i] = kernels::quantize_u8(vectors.data() + i * dim_, dim_, codes_.data() + (n0 + i) * dim_);
    ids_.push_back(ids[i]);
    slot_[ids[i]] = n0 + i;
  }
  return Status::ok();
}

Result<size_t> ExactIndex::remove(std::span<const Id> ids) {
  size_t removed = 0;
  for (Id id : ids) {
    auto it = slot_.find(id);
    if (it == slot_.end()) continue;
    const size_t s = it->second, last = ids_.size() - 1;
    slot_.erase(it);
    if (s != last) {
      // The last row moves into the hole: its bytes overwrite the removed template's.
      std::memcpy(codes_.data() + s * dim_, codes_.data() + last * dim_, dim_);
      scales_[s] = scales_[last];
      ids_[s] = ids_[last];
      slot_[ids_[s]] = s;
    }
    ids_.pop_back();
    codes_.resize(last * dim_);  // SecureBuffer zeroes the vacated row
    scales_.resize(last);
    ++removed;
  }
  // After a large erasure give the memory back (wiped) rather than keep a big zeroed tail.
  if (codes_.capacity() > 2 * codes_.size() + (64u << 20)) {
    codes_.shrink_to_fit();
    scales_.shrink_to_fit();
  }
  return removed;
}

Result<SearchResult> ExactIndex::search(std::span<const float> query, size_t k, const IdFilter* filter) const {
  if (query.size() != dim_) return invalid_argument("search: query of dimension " + std::to_string(query.size()) +
                                                    ", index of " + std::to_string(dim_));
  const PreparedQuery pq = prepare(query.data(), dim_);
  const size_t n = ids_.size();
  const int threads = static_cast<int>(std::max<size_t>(1, std::min<size_t>(threads_, n / 4096 + 1)));
  std::vector<TopK> tops(threads, TopK(k));
  run_parallel(threads, [&](int t) {
    auto [b, e] = split_range(n, threads, t);
    TopK& top = tops[t];
    int32_t raw[kBlock];
    for (size_t r0 = b; r0 < e; r0 += kBlock) {
      const size_t m = std::min(kBlock, e - r0);
      kernels::dot_u8s8_rows(codes_.data() + r0 * dim_, m, dim_, pq.q.data(), raw);
      for (size_t i = 0; i < m; ++i) {
        const float s = static_cast<float>(raw[i] - pq.corr) * scales_[r0 + i] * pq.scale;
        const Id id = ids_[r0 + i];
        // The filter is consulted only for a candidate that would enter the list; a refused
        // one never takes a place, so k eligible results come back whoever else is nearer.
        if (top.would_enter(s, id) && (!filter || filter->allowed(id))) top.push(s, id);
      }
    }
  });
  for (int t = 1; t < threads; ++t) tops[0].merge(tops[t]);
  return tops[0].result();
}

Result<std::vector<SearchResult>> ExactIndex::search_batch(std::span<const float> queries, size_t k,
                                                           const IdFilter* filter) const {
  if (queries.size() % dim_ != 0) return invalid_argument("search_batch: queries are not a multiple of the dimension");
  const size_t nq = queries.size() / dim_, n = ids_.size();
  std::vector<SearchResult> out(nq);
  const int threads = static_cast<int>(std::max<size_t>(1, std::min<size_t>(threads_, n / 4096 + 1)));
  for (size_t q0 = 0; q0 < nq; q0 += kBatch) {
    const size_t bq = std::min(kBatch, nq - q0);
    std::vector<int8_t> qs(bq * dim_);
    std::vector<float> qscale(bq);
    std::vector<int32_t> corr(bq);
    for (size_t j = 0; j < bq; ++j) {
      PreparedQuery p = prepare(queries.data() + (q0 + j) * dim_, dim_);
      std::memcpy(qs.data() + j * dim_, p.q.data(), dim_);
      qscale[j] = p.scale;
      corr[j] = p.corr;
    }
    std::vector<std::vector<TopK>> tops(threads, std::vector<TopK>(bq, TopK(k)));
    run_parallel(threads, [&](int t) {
      auto [b, e] = split_range(n, threads, t);
      constexpr size_t kRows = 64;
      std::vector<int32_t> raw(kRows * bq);
      for (size_t r0 = b; r0 < e; r0 += kRows) {
        const size_t m = std::min(kRows, e - r0);
        kernels::dot_u8s8_rows_multi(codes_.data() + r0 * dim_, m, dim_, qs.data(), bq, raw.data());
        for (size_t i = 0; i < m; ++i) {
          const Id id = ids_[r0 + i];
          for (size_t j = 0; j < bq; ++j) {
            const float s = static_cast<float>(raw[i * bq + j] - corr[j]) * scales_[r0 + i] * qscale[j];
            TopK& top = tops[t][j];
            if (top.would_enter(s, id) && (!filter || filter->allowed(id))) top.push(s, id);
          }
        }
      }
    });
    for (size_t j = 0; j < bq; ++j) {
      for (int t = 1; t < threads; ++t) tops[0][j].merge(tops[t][j]);
      out[q0 + j] = tops[0][j].result();
    }
  }
  return out;
}

IndexStats ExactIndex::stats() const {
  IndexStats s;
  s.size = ids_.size();
  s.memory_bytes = codes_.capacity() + scales_.capacity() * sizeof(float) + ids_.capacity() * sizeof(Id) +
                   slot_.bucket_count() * sizeof(void*) + slot_.size() * (sizeof(Id) + sizeof(size_t) + 2 * sizeof(void*));
  s.scan_bytes_per_item = dim_ + sizeof(float);
  return s;
}

Status ExactIndex::save_body(SealedWriter& out) const {
  FV_RETURN_IF_ERROR(out.write_pod<uint64_t>(dim_));
  FV_RETURN_IF_ERROR(out.write_vec(ids_.data(), ids_.size()));
  FV_RETURN_IF_ERROR(out.write_vec(scales_.data(), scales_.size()));
  return out.write_vec(codes_.data(), codes_.size());
}

Status ExactIndex::save(const std::filesystem::path& path, const IndexKey& key) const {
  FV_ASSIGN_OR_RETURN(auto out, SealedWriter::create(path, key));
  const char tag[8] = {'e', 'x', 'a', 'c', 't', 0, 0, 1};
  FV_RETURN_IF_ERROR(out->write(tag, 8));
  FV_RETURN_IF_ERROR(save_body(*out));
  return out->finish();
}

Result<std::unique_ptr<ExactIndex>> ExactIndex::load_body(SealedReader& in) {
  uint64_t dim = 0;
  FV_RETURN_IF_ERROR(in.read_pod(dim));
  if (dim == 0 || dim > 4096) return corrupt_data("index file: bad dimension");
  auto idx = std::make_unique<ExactIndex>(dim);
  constexpr size_t kMax = size_t(1) << 36;
  FV_RETURN_IF_ERROR((in.read_vec<Id>(idx->ids_, kMax)));
  FV_RETURN_IF_ERROR((in.read_vec<float>(idx->scales_, kMax)));
  FV_RETURN_IF_ERROR((in.read_vec<uint8_t>(idx->codes_, kMax)));
  if (idx->scales_.size() != idx->ids_.size() || idx->codes_.size() != idx->ids_.size() * dim)
    return corrupt_data("index file: inconsistent array sizes");
  idx->slot_.reserve(idx->ids_.size());
  for (size_t i = 0; i < idx->ids_.size(); ++i)
    if (!idx->slot_.emplace(idx->ids_[i], i).second) return corrupt_data("index file: duplicate id");
  return idx;
}

}  // namespace fv::index
