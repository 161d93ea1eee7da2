#pragma once
// Bounded loop driving for integration tests (STYLE §10): never sleep, always bound the wait.

#include "proxy/core/loop.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace proxy::test {

/// Runs `loop` one iteration at a time (blocking in poll, so no busy loop) until `pred` holds
/// or `timeout_ms` of loop time passed. A guard timer bounds every blocking iteration. `pred`
/// is evaluated before the first iteration and after each one. Returns the final pred().
bool run_until(core::Loop& loop, const std::function<bool()>& pred, std::uint64_t timeout_ms);

/// Runs `loop` for `ms` of loop time (to show that something does NOT happen).
void run_for(core::Loop& loop, std::uint64_t ms);

/// Loop time in ms, refreshed now.
std::uint64_t now_ms(core::Loop& loop);

/// Handles of `loop` that are open and not closing, excluding the Loop's own check/idle/prepare
/// service handles. Zero means nothing leaked a handle.
std::size_t open_handles(core::Loop& loop);
/// A description ("tcp active, timer inactive, ...") of those handles, for failure messages.
std::string describe_open_handles(core::Loop& loop);

/// Ignores SIGPIPE once per process (the proxy's main does the same).
void ignore_sigpipe();

} // namespace proxy::test
