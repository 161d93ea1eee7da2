#include <doctest/doctest.h>

#include "transports/replay_buffer.h"

using transports::ReplayBuffer;

TEST_CASE("replay buffer: sequence numbers start at 1 and are consecutive") {
    ReplayBuffer b(1024, 100);
    CHECK(b.last_seq() == 0);
    CHECK(b.first_seq() == 1);
    CHECK(b.push(false, "a") == 1);
    CHECK(b.push(true, "bb") == 2);
    CHECK(b.last_seq() == 2);
    CHECK(b.first_seq() == 1);
    CHECK(b.bytes() == 3);
    CHECK(b.messages()[1].binary);
}

TEST_CASE("replay buffer: ack drops acknowledged messages and is clamped to last_seq") {
    ReplayBuffer b(1024, 100);
    for (int i = 0; i < 5; ++i) {
        (void)b.push(false, "x");
    }
    b.ack(3);
    CHECK(b.first_seq() == 4);
    CHECK(b.messages().size() == 2);
    b.ack(99);
    CHECK(b.empty());
    CHECK(b.first_seq() == 6);
    CHECK(b.push(false, "y") == 6);
}

TEST_CASE("replay buffer: evicts oldest by bytes and by count, keeps the newest") {
    ReplayBuffer b(10, 3);
    std::size_t lost = 0;
    (void)b.push(false, "12345", &lost);
    (void)b.push(false, "12345", &lost);
    CHECK(lost == 0);
    (void)b.push(false, "1", &lost);  // 11 bytes > 10: evict seq 1
    CHECK(lost == 1);
    CHECK(b.first_seq() == 2);
    (void)b.push(false, "1");
    (void)b.push(false, "1");  // 4 messages > 3
    CHECK(b.first_seq() == 3);
    (void)b.push(false, std::string(100, 'z'));  // alone over the byte bound: kept
    CHECK(b.messages().size() == 1);
    CHECK(b.last_seq() == 6);
}

TEST_CASE("replay buffer: evicting already-acknowledged messages loses nothing") {
    ReplayBuffer b(4, 100);
    (void)b.push(false, "ab");
    b.ack(1);
    std::size_t lost = 7;
    (void)b.push(false, "abcd", &lost);
    CHECK(lost == 0);
}

TEST_CASE("replay buffer: gap_after names exactly the lost range") {
    ReplayBuffer b(3, 100);
    for (int i = 0; i < 6; ++i) {
        (void)b.push(false, "x");  // holds seq 4, 5, 6
    }
    CHECK(b.first_seq() == 4);
    CHECK_FALSE(b.gap_after(3).has_value());
    CHECK_FALSE(b.gap_after(6).has_value());
    const auto gap = b.gap_after(1);
    REQUIRE(gap.has_value());
    CHECK(gap->from == 2);
    CHECK(gap->to == 3);
    const auto all = b.gap_after(0);
    REQUIRE(all.has_value());
    CHECK(all->from == 1);
    CHECK(all->to == 3);
    CHECK_FALSE(b.gap_after(1000).has_value());  // a future position is clamped, not a gap
}

TEST_CASE("replay buffer: index_after and bytes_after select messages after a position") {
    ReplayBuffer b(1024, 100);
    (void)b.push(false, "a");
    (void)b.push(false, "bb");
    (void)b.push(false, "ccc");
    CHECK(b.index_after(0) == 0);
    CHECK(b.index_after(1) == 1);
    CHECK(b.index_after(3) == 3);
    CHECK(b.index_after(50) == 3);
    CHECK(b.bytes_after(1) == 5);
    CHECK(b.bytes_after(3) == 0);
    b.ack(2);
    CHECK(b.index_after(0) == 0);
    CHECK(b.index_after(2) == 0);
    CHECK(b.messages()[b.index_after(2)].seq == 3);
}
