#include "proxy/core/heap_trim.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace proxy::core {

HeapTrimmer::HeapTrimmer(Loop& loop, std::uint64_t interval_ms)
    : timer_(loop, [] { trim_if_worth_it(); }) {
    timer_.start(interval_ms, interval_ms);
    timer_.unref();
}

bool HeapTrimmer::trim_if_worth_it() noexcept {
#if defined(__GLIBC__)
    const struct mallinfo2 info = mallinfo2();
    const std::uint64_t free_bytes = info.fordblks;
    const std::uint64_t used_bytes = info.uordblks;
    if (free_bytes < kMinFree || free_bytes < used_bytes / 8) {
        return false;
    }
    malloc_trim(0);
    return true;
#else
    return false;
#endif
}

} // namespace proxy::core
