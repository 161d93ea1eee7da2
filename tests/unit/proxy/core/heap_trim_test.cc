// proxy/core/heap_trim: the decision to trim, against glibc's real heap.

#include "proxy/core/heap_trim.h"

#include <doctest/doctest.h>

#include <memory>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WSBRIDGE_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WSBRIDGE_TEST_ASAN 1
#endif

TEST_CASE("heap trim: holes left by a burst are worth trimming; a heap without them is not") {
#if defined(WSBRIDGE_TEST_ASAN) || !defined(__GLIBC__)
    MESSAGE("skipped: the sanitizer's allocator (or a non-glibc libc) replaces glibc's heap");
#else
    // Whatever earlier tests left is given back first, so the heap has no large holes.
    proxy::core::HeapTrimmer::trim_if_worth_it();

    // A burst: 12 MiB in 16 KiB blocks (below the mmap threshold, so on the heap), of which
    // every eighth stays, pinning the holes between them.
    constexpr std::size_t kBlock = 16 * 1024;
    constexpr std::size_t kCount = (12u << 20) / kBlock;
    std::vector<std::unique_ptr<char[]>> blocks;
    for (std::size_t i = 0; i < kCount; ++i) {
        blocks.emplace_back(new char[kBlock]);
        blocks.back()[0] = static_cast<char>(i);
    }
    std::vector<std::unique_ptr<char[]>> kept;
    for (std::size_t i = 0; i < kCount; ++i) {
        if (i % 8 == 0) {
            kept.push_back(std::move(blocks[i]));
        }
    }
    blocks.clear(); // frees 7/8 of the burst: over 10 MiB of holes
    CHECK(proxy::core::HeapTrimmer::trim_if_worth_it());
#endif
}
