// The NATS seam of cluster mode against a real 3-server JetStream cluster (one for the whole
// binary): streams, deduplicated and compare-and-set publishes, ordered reading, secure erase
// down to the servers' files, no acknowledged message lost when a server is SIGKILLed, KV.
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/kv.h"
#include "cluster/nats_connection.h"
#include "cluster/stream.h"
#include "support/nats_servers.h"

namespace fv::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using fv::test::NatsTestCluster;

NatsTestCluster* g_cluster = nullptr;
NatsConnection* g_conn = nullptr;

class NatsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    cluster_ = std::make_unique<NatsTestCluster>(3);
    ASSERT_TRUE(cluster_->wait_ready(60000)) << "the 3 nats-servers did not form a JetStream cluster in 60 s; "
                                             << "logs under " << cluster_->root();
    auto conn = NatsConnection::connect({cluster_->urls(), "fv-nats-test"});
    ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
    conn_ = std::move(conn).value();
    g_cluster = cluster_.get();
    g_conn = conn_.get();
  }
  void TearDown() override {
    g_conn = nullptr;
    g_cluster = nullptr;
    conn_.reset();  // before the servers go
    cluster_.reset();
  }

 private:
  std::unique_ptr<NatsTestCluster> cluster_;
  std::unique_ptr<NatsConnection> conn_;
};

[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new NatsEnvironment);

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  randombytes_buf(s.data(), n);
  return s;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void make_stream(const std::string& name, const std::string& subject) {
  ASSERT_TRUE(ensure_stream(*g_conn, {name, {subject}, 3}).is_ok());
}

// ---- errors and connection ----

TEST(NatsStatus, MapsNatsErrorsToCodes) {
  EXPECT_EQ(from_nats(NATS_TIMEOUT, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(from_nats(NATS_NO_RESPONDERS, JSNotEnabledErr, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(from_nats(NATS_CONNECTION_DISCONNECTED, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(from_nats(NATS_ERR, JSClusterNotAvailErr, "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(from_nats(NATS_NOT_FOUND, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(from_nats(NATS_ERR, JSStreamNotFoundErr, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(from_nats(NATS_ERR, JSNoMessageFoundErr, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(from_nats(NATS_ERR, JSStreamWrongLastSequenceErr, "x").code(), kWrongLastSequence);
  EXPECT_EQ(from_nats(NATS_ERR, JSStreamNameExistErr, "x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(from_nats(NATS_ERR, JSBadRequestErr, "x").code(), StatusCode::kInternal);
  const Status st = from_nats(NATS_TIMEOUT, "publish to fv.x");
  EXPECT_NE(st.message().find("publish to fv.x"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(natsStatus_GetText(NATS_TIMEOUT)), std::string::npos) << st.message();
}

TEST(NatsConnection, NoServerIsUnavailable) {
  auto c = NatsConnection::connect({{"nats://127.0.0.1:1"}, "nobody", 500});
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable) << c.status().to_string();
  EXPECT_EQ(NatsConnection::connect({}).status().code(), StatusCode::kInvalidArgument);
}

TEST(NatsConnection, SingleServerWithoutClusterWorks) {
  NatsTestCluster one(1);
  ASSERT_TRUE(one.wait_ready(30000)) << "logs under " << one.root();
  auto c = NatsConnection::connect({one.urls(), "fv-nats-test-single"});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  ASSERT_TRUE(ensure_stream(**c, {"fvt-single", {"fvt.single.>"}, 1}).is_ok());
  EXPECT_FALSE(ensure_stream(**c, {"fvt-other", {"fvt.other.>"}, 3}).is_ok()) << "3 replicas on one server";
  auto ack = publish(**c, "fvt.single.x", bytes("alone"), "single-1", 0, 5000);
  ASSERT_TRUE(ack.is_ok()) << ack.status().to_string();
  auto got = get_message(**c, "fvt-single", ack->seq);
  ASSERT_TRUE(got.is_ok() && got->has_value());
  EXPECT_EQ(str((*got)->data), "alone");
  EXPECT_EQ(one.stream_leader("fvt-single"), 0);
}


// Counts what an asynchronous subscription delivers, and sees its completion.
struct Delivered {
  std::mutex mu;
  std::condition_variable cv;
  int messages = 0;
  bool complete = false;
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    natsMsg_Destroy(msg);
    auto* self = static_cast<Delivered*>(closure);
    std::lock_guard lk(self->mu);
    ++self->messages;
    self->cv.notify_all();
  }
  static void on_complete(void* closure) {
    auto* self = static_cast<Delivered*>(closure);
    std::lock_guard lk(self->mu);
    self->complete = true;
    self->cv.notify_all();
  }
  bool wait_first() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(2), [&] { return messages > 0; });
  }
  void wait_complete() {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::seconds(5), [&] { return complete; });
  }
};

// nats.c 3.4 frees a subscription that its read loop may be about to lock (nats.c #637): every
// subscription here is ended while a flood of messages for it is being delivered, which made the
// process crash in 5 runs of 5 when ended with natsSubscription_Destroy. NatsConnection::retire
// frees it only after a round trip, and the connection goes on serving.
TEST(NatsConnection, ASubscriptionEndsSafelyWhileMessagesForItArrive) {
  auto sender = NatsConnection::connect({g_cluster->urls(), "fv-nats-test-flood"});
  ASSERT_TRUE(sender.is_ok()) << sender.status().to_string();
  const std::string subject = "fvt.flood.x";  // under no stream
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    // Bursts with a pause: fast enough that messages are always in flight, slow enough that
    // the server never cuts the receiver off as a slow consumer. Bounded in count.
    for (int burst = 0; burst < 200000 && !stop; ++burst) {
      for (int i = 0; i < 50; ++i) (void)natsConnection_Publish((*sender)->raw(), subject.c_str(), "x", 1);
      (void)natsConnection_FlushTimeout((*sender)->raw(), 1000);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  // Four threads, each ending subscriptions one after another: every message goes to all of
  // the live ones, so the read loop is delivering to some subscription nearly all the time.
  std::atomic<int> received{0}, failures{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> enders;
  for (int t = 0; t < 4; ++t)
    enders.emplace_back([&] {
      for (int i = 0; i < 2500 && seconds_since(t0) < 120; ++i) {
        // Asynchronous, as the RPC inboxes are: nats.c's delivery thread holds it too.
        Delivered got;
        natsSubscription* sub = nullptr;
        if (natsConnection_Subscribe(&sub, g_conn->raw(), subject.c_str(), &Delivered::on_message, &got) != NATS_OK) {
          ++failures;
          continue;
        }
        if (natsSubscription_SetOnCompleteCB(sub, &Delivered::on_complete, &got) != NATS_OK) ++failures;
        if (got.wait_first()) ++received;  // the read loop delivers to it now
        if (natsSubscription_Unsubscribe(sub) != NATS_OK) ++failures;
        got.wait_complete();  // before `got` goes
        g_conn->retire(sub);
      }
    });
  for (auto& t : enders) t.join();
  EXPECT_EQ(failures.load(), 0);
  stop = true;
  flood.join();
  EXPECT_GT(received.load(), 5000) << "the flood must reach the subscriptions for the test to mean anything";
  // The connection still works: a JetStream round trip through it.
  make_stream("fvt-after-flood", "fvt.afterflood.>");
  auto ack = publish(*g_conn, "fvt.afterflood.x", bytes("still here"), "after-flood-1", 0, 5000);
  EXPECT_TRUE(ack.is_ok()) << ack.status().to_string();
}
// ---- streams ----

TEST(NatsStream, EnsureStreamIsIdempotentAndRefusesAnotherShape) {
  const StreamSpec spec{"fvt-ensure", {"fvt.ensure.a.>", "fvt.ensure.b.>"}, 3};
  ASSERT_TRUE(ensure_stream(*g_conn, spec).is_ok());
  ASSERT_TRUE(ensure_stream(*g_conn, spec).is_ok());
  // Same subjects in another order, another duplicate window: the same stream.
  EXPECT_TRUE(ensure_stream(*g_conn, {"fvt-ensure", {"fvt.ensure.b.>", "fvt.ensure.a.>"}, 3, 60000}).is_ok());
  EXPECT_EQ(ensure_stream(*g_conn, {"fvt-ensure", {"fvt.ensure.a.>"}, 3}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ensure_stream(*g_conn, {"fvt-ensure", {"fvt.ensure.a.>", "fvt.ensure.b.>"}, 1}).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(delete_stream(*g_conn, "fvt-ensure").is_ok());
  EXPECT_EQ(delete_stream(*g_conn, "fvt-ensure").code(), StatusCode::kNotFound);
}

TEST(NatsStream, PublishDeduplicatesAndComparesTheLastSequence) {
  make_stream("fvt-pub", "fvt.pub.>");
  // Expected last sequence 0: only an empty stream takes it.
  auto first = publish(*g_conn, "fvt.pub.x", bytes("one"), "pub-1", 0, 10000);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(first->seq, 1u);
  EXPECT_FALSE(first->duplicate);
  auto again = publish(*g_conn, "fvt.pub.x", bytes("one"), "pub-1", std::nullopt, 10000);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->seq, 1u);
  EXPECT_TRUE(again->duplicate);

  auto second = publish(*g_conn, "fvt.pub.y", bytes("two"), "pub-2", 1, 10000);
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  EXPECT_EQ(second->seq, 2u);
  const auto t0 = Clock::now();
  auto stale = publish(*g_conn, "fvt.pub.y", bytes("three"), "pub-3", 1, 10000);
  EXPECT_EQ(stale.status().code(), kWrongLastSequence) << stale.status().to_string();
  EXPECT_LT(seconds_since(t0), 5.0) << "a lost compare-and-publish is not retried";
  EXPECT_EQ(publish(*g_conn, "fvt.pub.y", bytes("three"), "pub-3", 0, 10000).status().code(), kWrongLastSequence);
  EXPECT_EQ(publish(*g_conn, "fvt.pub.y", bytes("x"), "", std::nullopt, 1000).status().code(),
            StatusCode::kInvalidArgument);

  auto last = last_sequence(*g_conn, "fvt-pub");
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(*last, 2u);

  const std::string binary("\x00\x01\xff payload \x00", 13);
  auto bin = publish(*g_conn, "fvt.pub.z", bytes(binary), "pub-bin", 2, 10000);
  ASSERT_TRUE(bin.is_ok()) << bin.status().to_string();
  auto got = get_message(*g_conn, "fvt-pub", bin->seq);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(str((*got)->data), binary);
  EXPECT_EQ((*got)->subject, "fvt.pub.z");
  EXPECT_EQ((*got)->seq, 3u);
  EXPECT_GT((*got)->time_ns, 0);

  auto absent = get_message(*g_conn, "fvt-pub", 999);
  ASSERT_TRUE(absent.is_ok()) << absent.status().to_string();
  EXPECT_FALSE(absent->has_value());
  EXPECT_EQ(get_message(*g_conn, "fvt-no-such-stream", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(last_sequence(*g_conn, "fvt-no-such-stream").status().code(), StatusCode::kNotFound);

  // No stream holds the subject: nobody answers, the retries end at the deadline.
  auto nowhere = publish(*g_conn, "fvt.nowhere.x", bytes("lost"), "nowhere-1", std::nullopt, 1500);
  EXPECT_EQ(nowhere.status().code(), StatusCode::kUnavailable) << nowhere.status().to_string();
}

// A publish that timed out is settled by the only sequence it could take (expected + 1):
// ours there is committed, another message there means ours never will be, nothing there
// (or a message already gone) leaves the outcome unknown.
TEST(NatsStream, ATimedOutPublishIsSettledByTheOneSequenceItCouldTake) {
  make_stream("fvt-res", "fvt.res.>");
  auto first = publish(*g_conn, "fvt.res.a", bytes("ours"), "res-1", 0, 10000);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  auto ours = resolve_publish(*g_conn, "fvt-res", bytes("ours"), 0, 2000);
  ASSERT_TRUE(ours.is_ok()) << ours.status().to_string();
  EXPECT_EQ(ours->seq, first->seq);
  EXPECT_EQ(resolve_publish(*g_conn, "fvt-res", bytes("theirs"), 0, 2000).status().code(), StatusCode::kAborted);
  // Nothing at sequence 2 yet: unknown, at the deadline.
  auto pending = resolve_publish(*g_conn, "fvt-res", bytes("later"), 1, 300);
  EXPECT_EQ(pending.status().code(), StatusCode::kUnavailable) << pending.status().to_string();
  EXPECT_NE(pending.status().message().find("outcome unknown"), std::string::npos);
  // Committed meanwhile (the retried publish of a write that timed out): settled.
  ASSERT_TRUE(publish(*g_conn, "fvt.res.b", bytes("later"), "res-2", 1, 10000).is_ok());
  auto later = resolve_publish(*g_conn, "fvt-res", bytes("later"), 1, 2000);
  ASSERT_TRUE(later.is_ok()) << later.status().to_string();
  EXPECT_EQ(later->seq, 2u);
  // Erased since: it may have been ours, so the outcome stays unknown.
  ASSERT_TRUE(erase_message(*g_conn, "fvt-res", 2).is_ok());
  auto gone = resolve_publish(*g_conn, "fvt-res", bytes("later"), 1, 2000);
  EXPECT_EQ(gone.status().code(), StatusCode::kUnavailable) << gone.status().to_string();
  EXPECT_NE(gone.status().message().find("gone"), std::string::npos) << gone.status().message();
}

TEST(NatsStream, ReaderDeliversEveryMessageInOrderThenTimesOut) {
  make_stream("fvt-read", "fvt.read.>");
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back("message " + std::to_string(i));
    auto ack = publish(*g_conn, "fvt.read.s" + std::to_string(i % 3), bytes(sent.back()), "read-" + std::to_string(i),
                       std::nullopt, 10000);
    ASSERT_TRUE(ack.is_ok()) << ack.status().to_string();
    ASSERT_EQ(ack->seq, static_cast<uint64_t>(i + 1));
  }
  ASSERT_TRUE(erase_message(*g_conn, "fvt-read", 5).is_ok());

  auto reader = StreamReader::open(*g_conn, "fvt-read", 0);
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 19; ++i) {
    auto m = (*reader)->next(10000);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    ASSERT_TRUE(m->has_value()) << "message " << i << " did not arrive";
    seqs.push_back((*m)->seq);
    EXPECT_EQ(str((*m)->data), sent[(*m)->seq - 1]);
    EXPECT_EQ((*m)->subject, "fvt.read.s" + std::to_string(((*m)->seq - 1) % 3));
    EXPECT_GT((*m)->time_ns, 0);
  }
  std::vector<uint64_t> want;
  for (uint64_t s = 1; s <= 20; ++s) if (s != 5) want.push_back(s);
  EXPECT_EQ(seqs, want);  // in order, once each, the erased one skipped
  auto none = (*reader)->next(500);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_FALSE(none->has_value());

  // New messages reach an open reader; another reader starts where it is told.
  ASSERT_TRUE(publish(*g_conn, "fvt.read.s0", bytes("late"), "read-late", 20, 10000).is_ok());
  auto late = (*reader)->next(10000);
  ASSERT_TRUE(late.is_ok() && late->has_value());
  EXPECT_EQ((*late)->seq, 21u);
  EXPECT_EQ(str((*late)->data), "late");

  auto from15 = StreamReader::open(*g_conn, "fvt-read", 15);
  ASSERT_TRUE(from15.is_ok()) << from15.status().to_string();
  for (uint64_t want_seq = 16; want_seq <= 21; ++want_seq) {
    auto m = (*from15)->next(10000);
    ASSERT_TRUE(m.is_ok() && m->has_value());
    EXPECT_EQ((*m)->seq, want_seq);
  }
  EXPECT_EQ(StreamReader::open(*g_conn, "fvt-no-such-stream", 0).status().code(), StatusCode::kNotFound);
}

// ---- KV ----

TEST(NatsKv, CreateOncePutGetKeys) {
  auto kv = KvBucket::open_or_create(*g_conn, "fvt-kv", 3);
  ASSERT_TRUE(kv.is_ok()) << kv.status().to_string();
  auto empty = kv->keys();
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_TRUE(empty->empty());

  auto created = kv->create("cluster.init", "first");
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  auto twice = kv->create("cluster.init", "second");
  EXPECT_EQ(twice.status().code(), StatusCode::kAlreadyExists) << twice.status().to_string();
  auto init = kv->get("cluster.init");
  ASSERT_TRUE(init.is_ok() && init->has_value());
  EXPECT_EQ(**init, "first");

  auto r1 = kv->put("shard-map", "v1");
  auto r2 = kv->put("shard-map", std::string("v2\0bin", 6));
  ASSERT_TRUE(r1.is_ok() && r2.is_ok());
  EXPECT_GT(*r2, *r1);
  auto map = kv->get("shard-map");
  ASSERT_TRUE(map.is_ok() && map->has_value());
  EXPECT_EQ(**map, std::string("v2\0bin", 6));
  auto missing = kv->get("no-such-key");
  ASSERT_TRUE(missing.is_ok());
  EXPECT_FALSE(missing->has_value());

  // A second handle (another node) sees the same bucket.
  auto other = KvBucket::open_or_create(*g_conn, "fvt-kv", 3);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  auto keys = other->keys();
  ASSERT_TRUE(keys.is_ok()) << keys.status().to_string();
  EXPECT_EQ(std::set<std::string>(keys->begin(), keys->end()), (std::set<std::string>{"cluster.init", "shard-map"}));
  EXPECT_EQ(other->create("cluster.init", "third").status().code(), StatusCode::kAlreadyExists);
}

// ---- files under the servers' store dirs ----

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The files under server i's store dir (relative to it) that hold any `window`-byte window of
// `needle` (window 0 = the whole of it); the first one only unless `all`.
std::vector<std::string> files_holding(int i, const std::string& needle, size_t window = 0, bool all = false) {
  if (window == 0 || window > needle.size()) window = needle.size();
  std::vector<std::string> out;
  std::error_code ec;
  const auto& root = g_cluster->store_dir(i);
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string content = read_file(it->path());
    for (size_t w = 0; w + window <= needle.size(); ++w) {
      if (content.find(std::string_view(needle).substr(w, window)) != std::string::npos) {
        out.push_back(std::filesystem::relative(it->path(), root).string());
        if (!all) return out;
        break;
      }
    }
  }
  return out;
}

bool store_holds(int i, const std::string& needle, size_t window = 0) {
  return !files_holding(i, needle, window).empty();
}


// ---- servers SIGKILLed while publishing and reading ----

// The server holding the stream's only consumer (the reader's), or -1.
int consumer_host(const std::string& stream) {
  int host = -1;
  jsConsumerInfoList* cl = nullptr;
  if (js_Consumers(&cl, g_conn->js(), stream.c_str(), nullptr, nullptr) == NATS_OK) {
    if (cl->Count == 1 && cl->List[0]->Cluster != nullptr && cl->List[0]->Cluster->Leader != nullptr) {
      host = g_cluster->index_of(cl->List[0]->Cluster->Leader);
    }
    jsConsumerInfoList_Destroy(cl);
  }
  return host;
}

// Bounded wait until server i is a current replica of `stream` and its files hold `payload`
// (a message published while it was down); the seconds it took, or -1.
double wait_caught_up(const std::string& stream, int i, const std::string& payload) {
  const auto t0 = Clock::now();
  bool current = false, on_disk = false;
  while (seconds_since(t0) < 60) {
    current = current || g_cluster->replica_current(stream, i);
    on_disk = on_disk || store_holds(i, payload);
    if (current && on_disk) return seconds_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ADD_FAILURE() << "n" << i << " has not caught up 60 s after its restart: current replica " << current
                << ", holds a message published while it was down " << on_disk;
  return -1;
}

// The stream leader's server is SIGKILLed after 50 publishes and restarted after 100; then the
// server holding the reader's consumer is SIGKILLed after 120 and restarted after 170. Every
// acknowledged message must be readable with its bytes, the reader must see each stored message
// once and in order, and each restarted server must catch up on what it missed.
TEST(NatsStream, SigkilledServersLoseNoAcknowledgedMessage) {
  const std::string stream = "fvt-kill";
  make_stream(stream, "fvt.kill.>");
  int leader = -1;
  for (int i = 0; i < 100 && leader < 0; ++i) {
    leader = g_cluster->stream_leader(stream);
    if (leader < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(leader, 0) << "no leader for " << stream;

  auto reader_conn = NatsConnection::connect({g_cluster->urls(), "fv-nats-test-reader"});
  ASSERT_TRUE(reader_conn.is_ok()) << reader_conn.status().to_string();
  auto reader = StreamReader::open(**reader_conn, stream, 0);
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  std::atomic<uint64_t> read_until{0};  // 0 = keep reading; else stop once this seq is read
  std::vector<StoredMessage> read;
  std::string reader_error;
  StreamReader* r = reader->get();
  std::thread reader_thread([r, &read, &read_until, &reader_error] {
    const auto give_up = Clock::now() + std::chrono::seconds(240);
    while (Clock::now() < give_up) {
      const uint64_t until = read_until.load();
      if (until != 0 && r->last_delivered() >= until) return;
      auto m = r->next(1000);
      if (!m.is_ok()) {
        reader_error = m.status().to_string();
        return;
      }
      if (m->has_value()) read.push_back(std::move(**m));
    }
    reader_error = "reader gave up after 240 s";
  });

  std::vector<std::string> payloads;
  for (int i = 0; i < 200; ++i) {
    std::string p = "kill-test " + std::to_string(i) + " ";
    for (unsigned char c : random_bytes(16)) p += "0123456789abcdef"[c & 15];
    payloads.push_back(p);
  }
  std::map<uint64_t, std::string> acked;  // seq -> payload
  int failed = 0, second = -1;
  double longest_s = 0, first_catch_up_s = -1;
  const auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i) {
    if (i == 50) g_cluster->kill(leader);
    if (i == 100) g_cluster->restart(leader);
    if (i == 120) {
      // The first victim must be back in the group before the second goes, or the stream
      // would be down to one replica.
      first_catch_up_s = wait_caught_up(stream, leader, payloads[75]);
      second = consumer_host(stream);
      if (second < 0) second = (leader + 1) % g_cluster->size();
      std::printf("[ measure ] reader's consumer on n%d\n", second);
      g_cluster->kill(second);
    }
    if (i == 170) g_cluster->restart(second);
    const auto p0 = Clock::now();
    auto ack = publish(*g_conn, "fvt.kill.m" + std::to_string(i % 7), bytes(payloads[i]), "kill-" + std::to_string(i),
                       std::nullopt, 30000);
    longest_s = std::max(longest_s, seconds_since(p0));
    if (!ack.is_ok()) {
      ++failed;
      ADD_FAILURE() << "publish " << i << ": " << ack.status().to_string();
      continue;
    }
    EXPECT_FALSE(ack->duplicate) << "publish " << i;
    EXPECT_TRUE(acked.emplace(ack->seq, payloads[i]).second) << "sequence " << ack->seq << " acknowledged twice";
  }
  std::printf("[ measure ] 200 publishes, leader n%d SIGKILLed at 50 and restarted at 100 (caught up in %.1f s), "
              "n%d SIGKILLed at 120 and restarted at 170: %.1f s, longest publish %.1f s, %d failed\n",
              leader, first_catch_up_s, second, seconds_since(t0), longest_s, failed);
  EXPECT_EQ(failed, 0);
  ASSERT_FALSE(acked.empty());

  for (const auto& [seq, payload] : acked) {
    auto got = get_message(*g_conn, stream, seq);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    ASSERT_TRUE(got->has_value()) << "acknowledged sequence " << seq << " is lost";
    EXPECT_EQ(str((*got)->data), payload) << "sequence " << seq;
  }
  auto last = last_sequence(*g_conn, stream);
  ASSERT_TRUE(last.is_ok()) << last.status().to_string();

  read_until = *last;
  reader_thread.join();
  EXPECT_TRUE(reader_error.empty()) << reader_error;
  std::vector<uint64_t> read_seqs;
  for (const auto& m : read) read_seqs.push_back(m.seq);
  EXPECT_TRUE(std::is_sorted(read_seqs.begin(), read_seqs.end()));
  EXPECT_EQ(std::set<uint64_t>(read_seqs.begin(), read_seqs.end()).size(), read_seqs.size()) << "a message read twice";
  std::set<uint64_t> want;
  for (uint64_t s = 1; s <= *last; ++s) want.insert(s);
  EXPECT_EQ(std::set<uint64_t>(read_seqs.begin(), read_seqs.end()), want) << "the reader missed messages";
  for (const auto& m : read) {
    auto it = acked.find(m.seq);
    if (it != acked.end()) {
      EXPECT_EQ(str(m.data), it->second) << "sequence " << m.seq;
    }
  }
  std::printf("[ measure ] reader: %zu messages in order, %d resubscriptions of its own\n", read.size(),
              r->resubscriptions());

  const double second_catch_up_s = wait_caught_up(stream, second, payloads[145]);
  std::printf("[ measure ] restarted n%d caught up within %.1f s\n", second, second_catch_up_s);
  ASSERT_TRUE(g_cluster->wait_ready(60000));
}

}  // namespace
}  // namespace fv::cluster
