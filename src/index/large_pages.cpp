#include "index/large_pages.h"

#include <sys/mman.h>

namespace fv::index {

void* allocate_large(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < kHuge) return std::malloc(bytes == 0 ? 1 : bytes);
  if (bytes > size_t(-1) - kHuge) return nullptr;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
#ifdef MADV_HUGEPAGE
  // Advice only: where it is refused (no THP in this kernel) the pages are small, nothing fails.
  if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

}  // namespace fv::index
