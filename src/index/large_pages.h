// Large arrays read at random (the graph's codes, links and visited marks: gigabytes at 10 M)
// asked to be backed by 2 MiB pages. A search scores a few thousand scattered nodes; with
// 4 KiB pages each touch is a TLB miss whose page walk itself misses the cache (the page
// tables of 2 GB are 4 MB). Linux honours the request where transparent huge pages are
// "madvise" (Debian's default) or "always"; elsewhere it changes nothing.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace fv::index {

// bytes ≥ 2 MiB: aligned to 2 MiB, rounded up to whole 2 MiB pages and advised as huge;
// smaller: plain malloc. nullptr when out of memory. Release with std::free.
void* allocate_large(size_t bytes);

// For std::vector: the same, element-typed.
template <class T>
struct LargePageAllocator {
  using value_type = T;
  LargePageAllocator() = default;
  template <class U>
  LargePageAllocator(const LargePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    void* p = allocate_large(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const LargePageAllocator<U>&) const noexcept { return true; }
};

}  // namespace fv::index
