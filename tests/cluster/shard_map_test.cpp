// Shard placement decides where data lives for the life of a cluster: it must be stable across
// processes and versions, spread evenly, and move as little as possible when nodes change.
#include "cluster/shard_map.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fv::cluster {
namespace {

// Pinned: first 8 bytes of SHA-256(uid), big-endian, mod S. The values were computed once and
// checked with Python's hashlib; a change here moves every subject of every existing cluster.
TEST(ShardMap, ShardOfIsPinned) {
  EXPECT_EQ(shard_of("", 16), 4);
  EXPECT_EQ(shard_of("a", 16), 10);
  EXPECT_EQ(shard_of("subject-0001", 16), 15);
  EXPECT_EQ(shard_of("3f2b8c1e-7a4d-4e0f-9c55-0b6f2d1a9e77", 16), 0);
  EXPECT_EQ(shard_of("alice", 16), 15);
  EXPECT_EQ(shard_of("bob", 16), 10);
  EXPECT_EQ(shard_of("alice", 3), 2);
  EXPECT_EQ(shard_of("subject-0001", 1000), 511);
  EXPECT_EQ(shard_of("bob", 1000), 650);
  EXPECT_EQ(shard_of("anything", 1), 0);
}

TEST(ShardMap, ShardOfIsDeterministicAndInRange) {
  for (int i = 0; i < 1000; ++i) {
    const std::string uid = "uid-" + std::to_string(i);
    const int s = shard_of(uid, 16);
    EXPECT_GE(s, 0);
    EXPECT_LT(s, 16);
    EXPECT_EQ(s, shard_of(uid, 16));
  }
}

TEST(ShardMap, SpreadsSixteenThousandUidsEvenlyOverSixteenShards) {
  std::vector<int> count(16, 0);
  for (int i = 0; i < 16000; ++i) ++count[shard_of("subject-" + std::to_string(i), 16)];
  for (int s = 0; s < 16; ++s) {
    EXPECT_GE(count[s], 800) << "shard " << s;
    EXPECT_LE(count[s], 1200) << "shard " << s;
  }
}

TEST(ShardMap, ReplicasIgnoreNodeOrder) {
  std::vector<std::string> nodes = {"node-a", "node-b", "node-c", "node-d", "node-e"};
  // Pinned like shard_of (Python: SHA-256(name ‖ 0x00 ‖ "7"), highest first).
  EXPECT_EQ(replicas_of(7, nodes, 3), (std::vector<std::string>{"node-b", "node-a", "node-e"}));
  for (int shard = 0; shard < 16; ++shard) {
    const auto want = replicas_of(shard, nodes, 3);
    std::vector<std::string> shuffled = nodes;
    std::sort(shuffled.begin(), shuffled.end());
    do {
      ASSERT_EQ(replicas_of(shard, shuffled, 3), want) << "shard " << shard;
    } while (std::next_permutation(shuffled.begin(), shuffled.end()));
  }
}

TEST(ShardMap, ReplicasAreDistinctNodes) {
  const std::vector<std::string> nodes = {"n1", "n2", "n3", "n4", "n5", "n6"};
  for (int shard = 0; shard < 16; ++shard) {
    const auto r = replicas_of(shard, nodes, 3);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(std::set<std::string>(r.begin(), r.end()).size(), 3u);
    for (const auto& n : r) EXPECT_NE(std::find(nodes.begin(), nodes.end(), n), nodes.end());
  }
  // A name listed twice is still one node.
  const auto r = replicas_of(3, {"n1", "n1", "n2"}, 3);
  EXPECT_EQ(std::set<std::string>(r.begin(), r.end()).size(), r.size());
  EXPECT_EQ(r.size(), 2u);
}

TEST(ShardMap, FewerNodesThanReplicasGivesAllNodes) {
  const auto two = replicas_of(5, {"x", "y"}, 3);
  EXPECT_EQ(std::set<std::string>(two.begin(), two.end()), (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(replicas_of(5, {"x"}, 3), (std::vector<std::string>{"x"}));
  EXPECT_TRUE(replicas_of(5, {}, 3).empty());
}

TEST(ShardMap, RemovingANodeMovesOnlyTheShardsItHeld) {
  const std::vector<std::string> nodes = {"n1", "n2", "n3", "n4", "n5"};
  for (const auto& gone : nodes) {
    std::vector<std::string> rest;
    for (const auto& n : nodes) if (n != gone) rest.push_back(n);
    int moved = 0;
    for (int shard = 0; shard < 64; ++shard) {
      const auto before = replicas_of(shard, nodes, 3);
      const auto after = replicas_of(shard, rest, 3);
      const bool held = std::find(before.begin(), before.end(), gone) != before.end();
      if (!held) {
        EXPECT_EQ(after, before) << "shard " << shard << " moved though " << gone << " held none of it";
      } else {
        ++moved;
        // The survivors keep their place; one new node replaces the lost one.
        std::vector<std::string> kept;
        for (const auto& n : before) if (n != gone) kept.push_back(n);
        std::vector<std::string> after_without_new;
        for (const auto& n : after) if (std::find(kept.begin(), kept.end(), n) != kept.end()) after_without_new.push_back(n);
        EXPECT_EQ(after_without_new, kept) << "shard " << shard;
        EXPECT_EQ(after.size(), 3u);
      }
    }
    EXPECT_GT(moved, 0) << gone << " held no shard of 64";
  }
}

TEST(ShardMap, StreamAndSubjectNames) {
  EXPECT_EQ(shard_stream_name(7), "fv-shard-07");
  EXPECT_EQ(shard_subject_prefix(7), "fv.shard.07");
  EXPECT_EQ(shard_stream_name(15), "fv-shard-15");
  EXPECT_EQ(shard_stream_name(123), "fv-shard-123");
}

}  // namespace
}  // namespace fv::cluster
