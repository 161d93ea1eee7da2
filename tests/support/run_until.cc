#include "tests/support/run_until.h"

#include <csignal>
#include <uv.h>
#include <vector>

// uv.h is included here only to walk the loop's handles for the leak check; everything else
// in tests/support goes through the proxy/core wrappers.

namespace proxy::test {

namespace {

/// The guard timers of run_until calls in progress; open_handles() does not count them.
thread_local std::vector<const uv_timer_t*> g_guards;

void guard_fired_cb(uv_timer_t* timer) noexcept { *static_cast<bool*>(timer->data) = true; }

void guard_closed_cb(uv_handle_t* handle) noexcept {
    std::erase(g_guards, reinterpret_cast<const uv_timer_t*>(handle));
    delete reinterpret_cast<uv_timer_t*>(handle);
}

} // namespace

bool run_until(core::Loop& loop, const std::function<bool()>& pred, std::uint64_t timeout_ms) {
    if (pred()) {
        return true;
    }
    // The guard bounds every blocking iteration. It is a raw uv timer (not core::Timer) so that
    // the leak check can recognise and skip it while its close is pending.
    bool expired = false;
    auto* guard = new uv_timer_t;
    uv_timer_init(loop.raw(), guard);
    guard->data = &expired;
    g_guards.push_back(guard);
    loop.update_time();
    uv_timer_start(guard, guard_fired_cb, timeout_ms, 0);
    bool ok = true;
    while (!pred()) {
        if (expired) {
            ok = pred();
            break;
        }
        loop.run_once(false);
    }
    uv_timer_stop(guard);
    guard->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(guard), guard_closed_cb);
    return ok;
}

void run_for(core::Loop& loop, std::uint64_t ms) {
    (void)run_until(
        loop, [] { return false; }, ms);
}

std::uint64_t now_ms(core::Loop& loop) {
    loop.update_time();
    return loop.now();
}

namespace {

struct WalkState {
    std::size_t count = 0;
    std::string text;
};

void walk_cb(uv_handle_t* handle, void* arg) noexcept {
    auto* state = static_cast<WalkState*>(arg);
    if (uv_is_closing(handle) != 0 || handle->type == UV_CHECK || handle->type == UV_IDLE ||
        handle->type == UV_PREPARE) {
        return;
    }
    for (const uv_timer_t* g : g_guards) {
        if (reinterpret_cast<const uv_handle_t*>(g) == handle) {
            return;
        }
    }
    ++state->count;
    if (!state->text.empty()) {
        state->text += ", ";
    }
    state->text += uv_handle_type_name(handle->type);
    state->text += uv_is_active(handle) != 0 ? " active" : " inactive";
    state->text += uv_has_ref(handle) != 0 ? "" : " unref";
}

WalkState walk(core::Loop& loop) {
    WalkState state;
    uv_walk(loop.raw(), walk_cb, &state);
    return state;
}

} // namespace

std::size_t open_handles(core::Loop& loop) { return walk(loop).count; }

std::string describe_open_handles(core::Loop& loop) { return walk(loop).text; }

void ignore_sigpipe() {
    static const bool done = [] {
        std::signal(SIGPIPE, SIG_IGN);
        return true;
    }();
    (void)done;
}

} // namespace proxy::test
