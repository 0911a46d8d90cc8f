// Retention (docs/PROTOCOL.md 4.13), measured: what publishers get while a node trims a
// room far over its bound in the background (actors/chat_retention.cpp, Trimmer: a step
// of at most 1000 messages, one write transaction through the batch pipeline, step
// after step), against what they get with no trim, in the same run; and a soak of rooms
// kept at a bound while publishers go on, to see whether the store file and the
// process's memory stay flat once trimming has begun.
//
//   build/bench/retention_bench [--mode trim] [--messages N] [--publishers P] [--seconds S]
//       [--trim-keep K] [--in-flight W] [--durability sync|nosync] [--control on|off]
//       [--trim-timeout S] [--dir DIR] [--limit key=value]...
//   build/bench/retention_bench --mode alternate [--messages N] [--seconds S] [--pairs N] [--trim-keep K]
//       [--publishers P] [--in-flight W] [--durability sync|nosync] [--dir DIR] [--limit key=value]...
//   build/bench/retention_bench --mode soak [--rooms K] [--keep M] [--rate R] [--minutes D]
//       [--publishers P] [--interval S] [--durability sync|nosync] [--dir DIR] [--limit key=value]...
//
// trim: room "big" gets N messages of 100 bytes written straight into the store, a node
//   is started on it (in this process, tcp on loopback), and P clients publish 100-byte
//   bodies into rooms of their own ("pub-0", ...) for S seconds: once with no trim, then
//   for as long again from the moment "big" gets max_messages K (the node's background
//   trim then removes N - K messages), then (--control on) once more after the trim, as
//   a check on drift. Another client reads "big"'s first_seq every 200 ms (set_retention
//   with no fields) to time the trim.
// alternate: as trim, but within one publishers' run of 2 x --pairs windows of S seconds:
//   "big" is set to keep K under a legal hold, and the hold is lifted and put back in
//   turns (held, trimming, trimming, held, ...), each window measured from 1.5 s after
//   its switch; the trimming windows against the held ones beside them.
// soak: K rooms, each set to keep M messages, publishers paced to R messages a second in
//   all, for D minutes; every --interval seconds (30) a line: messages acknowledged, each
//   room's first_seq and messages held (min/max over rooms), data.mdb's size, the RSS.
//
// --limit key=value adds a line to the topology's [limits] (transport/limits.hpp), e.g.
// --limit retention_max_messages=5000000; repeatable.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "switchboard/client/client.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "bench_nodes.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace fs = std::filesystem;
using namespace sb::bench;

constexpr std::size_t kBody = 100;  ///< bytes of every body, filled or published
constexpr auto kPoll = std::chrono::milliseconds(200);

struct Config {
  std::string mode = "trim";
  // trim
  std::uint64_t messages = 2'000'000;  ///< in "big" before the node starts
  std::uint64_t trim_keep = 1000;      ///< max_messages then set on "big"
  int publishers = 4;
  double seconds = 10;
  std::size_t in_flight = 1;  ///< 1: publish() and wait; more: publish_async with that window
  bool control = true;        ///< an idle run again once the trim is done
  double trim_timeout = 1800;  ///< seconds to wait for the trim after set_retention
  // alternate
  int pairs = 4;  ///< trimming windows, each beside a held one
  // soak
  int rooms = 4;
  std::uint64_t keep = 1'000'000;
  std::uint64_t rate = 20'000;
  double minutes = 30;
  double interval = 30;
  // both
  std::string durability = "sync";
  std::vector<std::string> limits;  ///< "key = value" lines of [limits]
  fs::path base = fs::temp_directory_path();
};

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}
double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) { return Seconds(b - a).count(); }

/// Room "big" with `messages` 100-byte messages, written straight into the store in
/// batches of 10000 (as backup_bench fills): seqs 1..messages, times a day ago and on
/// (older than the dedup window, so the node does not load them as recent publishes).
void fill(const fs::path& dir, std::uint64_t messages) {
  auto store = open_for_fill(dir);
  const std::uint64_t t0 = wall_ms() - 24ull * 3600 * 1000;
  std::vector<sb::persistence::Record> batch;
  batch.push_back(sb::persistence::CreateRoom{"big", "ann", t0, false});
  if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
  batch.clear();
  const std::string body(kBody, 'x');
  for (std::uint64_t i = 0; i < messages; ++i) {
    batch.push_back(sb::persistence::StoredMessage{"big", i + 1, "ann", t0 + i, body, "f-" + std::to_string(i)});
    if (batch.size() == 10000 || i + 1 == messages) {
      if (auto done = store.append_batch(batch); !done) throw std::runtime_error(done.error().message);
      batch.clear();
    }
  }
}

std::string topology(const fs::path& dir, const Config& config) {
  std::string text = loopback_topology(dir, config.durability, {"a"});
  if (!config.limits.empty()) {
    text += "[limits]\n";
    for (const auto& line : config.limits) text += line + "\n";
  }
  return text;
}

sb::client::ClientOptions client_options(const std::string& endpoint, std::size_t in_flight = 1024) {
  sb::client::ClientOptions o;
  o.endpoint = endpoint;
  o.max_in_flight = std::max<std::size_t>(1, in_flight);
  return o;
}

/// data.mdb on disk: st_size and st_blocks * 512.
struct FileSize {
  std::uint64_t size = 0, disk = 0;
};
FileSize stat_file(const fs::path& file) {
  struct stat s {};
  if (::stat(file.c_str(), &s) != 0) return {};
  return {static_cast<std::uint64_t>(s.st_size), static_cast<std::uint64_t>(s.st_blocks) * 512};
}

/// This process's resident memory (/proc/self/status), in bytes (0 if unknown): VmRSS,
/// and its parts RssAnon (heap, stacks) and RssFile (mapped files: LMDB's map of
/// data.mdb counts here, up to the pages touched).
struct Rss {
  std::uint64_t total = 0, anon = 0, file = 0;
};
Rss rss_bytes() {
  Rss out;
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    auto kb = [&](std::size_t from) { return std::stoull(line.substr(from)) * 1024; };
    if (line.rfind("VmRSS:", 0) == 0) out.total = kb(6);
    else if (line.rfind("RssAnon:", 0) == 0) out.anon = kb(8);
    else if (line.rfind("RssFile:", 0) == 0) out.file = kb(8);
  }
  return out;
}

double growth_percent(double from, double to) { return from > 0 ? (to - from) / from * 100 : std::nan(""); }

// ---------------------------------------------------------------------------------------
// trim mode

/// One acknowledged publish: when it was given to the client, and how long its ack took.
struct Sample {
  SteadyClock::time_point start;
  double us = 0;
};

/// What the publishers did in one run.
struct Run {
  SteadyClock::time_point begin, end;  ///< the common start; the last publisher's return
  std::uint64_t acked = 0, errors = 0;
  std::string first_error;
  std::vector<Sample> samples;
  double seconds() const { return seconds_between(begin, end); }
};

/// The figures of the acked publishes begun within [from, to).
struct Figures {
  double per_second = std::nan("");
  LatencySummary latency;
  double window_s = 0;
};

/// The samples of `run` begun within any of `windows`, as one set.
Figures figures_over(const Run& run, const std::vector<std::pair<SteadyClock::time_point, SteadyClock::time_point>>& windows) {
  Figures f;
  std::vector<double> us;
  for (const auto& [from, to] : windows) {
    f.window_s += seconds_between(from, to);
    for (const auto& s : run.samples)
      if (s.start >= from && s.start < to) us.push_back(s.us);
  }
  if (f.window_s > 0) f.per_second = static_cast<double>(us.size()) / f.window_s;
  f.latency = summarize(std::move(us));
  return f;
}

Figures figures(const Run& run, SteadyClock::time_point from, SteadyClock::time_point to) {
  return figures_over(run, {{from, to}});
}
Figures figures(const Run& run) {
  Figures f = figures(run, run.begin, run.end);
  f.per_second = static_cast<double>(run.acked) / run.seconds();  // all acks, to the last return
  return f;
}

/// The publishers, each its own client into its own room "pub-<i>", for `duration`
/// from a common start; `at_start` runs on this thread right after the start.
Run run_publishers(std::vector<std::unique_ptr<sb::client::Client>>& clients, const Config& config,
                   Seconds duration, const std::function<void()>& at_start) {
  const int n = static_cast<int>(clients.size());
  std::barrier line(n + 1);
  std::atomic<bool> go{false};
  SteadyClock::time_point start{}, deadline{};
  std::vector<Run> each(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      sb::client::Client& c = *clients[static_cast<std::size_t>(i)];
      Run& mine = each[static_cast<std::size_t>(i)];
      const std::string room = "pub-" + std::to_string(i), body(kBody, 'p');
      mine.samples.reserve(std::size_t{1} << 16);
      // An ack: its latency from when the publish was asked; an error: counted, the first kept.
      auto note = [&mine](const sb::Result<sb::transport::PublishOk>& ack, SteadyClock::time_point t0) {
        const auto t1 = SteadyClock::now();
        if (ack) {
          ++mine.acked;
          mine.samples.push_back({t0, micros(t1 - t0)});
        } else if (++mine.errors == 1) {
          mine.first_error = ack.error().message;
        }
      };
      line.arrive_and_wait();
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      if (config.in_flight <= 1) {
        for (;;) {
          const auto t0 = SteadyClock::now();
          if (t0 >= deadline) break;
          note(c.publish(room, "bob", body), t0);
        }
      } else {
        while (SteadyClock::now() < deadline) {
          const auto t0 = SteadyClock::now();
          c.publish_async(room, "bob", body,
                          [&note, t0](const sb::Result<sb::transport::PublishOk>& ack) { note(ack, t0); });
        }
        c.wait_all();
      }
      mine.end = SteadyClock::now();
    });
  line.arrive_and_wait();
  start = SteadyClock::now();
  deadline = start + std::chrono::duration_cast<SteadyClock::duration>(duration);
  go.store(true, std::memory_order_release);
  at_start();
  for (auto& t : threads) t.join();
  Run all;
  all.begin = start;
  all.end = start;
  for (auto& r : each) {
    all.end = std::max(all.end, r.end);
    all.acked += r.acked;
    all.errors += r.errors;
    if (all.first_error.empty()) all.first_error = r.first_error;
    all.samples.insert(all.samples.end(), r.samples.begin(), r.samples.end());
  }
  return all;
}

/// Reads a room's first_seq every 200 ms (set_retention with no fields) from its own
/// client and thread, from arm() until it reaches `target` (or the timeout).
class TrimWatch {
 public:
  struct Poll {
    SteadyClock::time_point at;
    std::uint64_t first_seq = 0;
  };

  TrimWatch(const std::string& endpoint, std::string room, std::uint64_t target, Seconds timeout)
      : client_(client_options(endpoint)), room_(std::move(room)), target_(target) {
    thread_ = std::thread([this, timeout] {
      while (!armed_.load(std::memory_order_acquire)) {
        if (stop_.load()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      const auto give_up = armed_at_ + std::chrono::duration_cast<SteadyClock::duration>(timeout);
      for (auto next = armed_at_ + kPoll;; next += kPoll) {
        std::this_thread::sleep_until(next);
        auto read = client_.set_retention(sb::transport::SetRetention{room_, {}, {}, {}});
        const auto now = SteadyClock::now();
        if (!read) {
          error_ = read.error().message;
        } else {
          polls_.push_back({now, read->first_seq});
          if (read->first_seq >= target_) {
            done_at_ = now;
            return;
          }
        }
        if (stop_.load() || now >= give_up) return;
      }
    });
  }
  ~TrimWatch() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// Polls begin now (the bound was just set); `initial` is the first_seq before it.
  void arm(std::uint64_t initial) {
    initial_ = initial;
    armed_at_ = SteadyClock::now();
    armed_.store(true, std::memory_order_release);
  }
  /// Waits for the trim to end (or the timeout).
  void wait() {
    if (!armed_.load()) stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // After wait():
  SteadyClock::time_point armed_at() const { return armed_at_; }
  std::uint64_t initial() const { return initial_; }
  std::uint64_t target() const { return target_; }
  const std::vector<Poll>& polls() const { return polls_; }
  std::optional<SteadyClock::time_point> done_at() const { return done_at_; }
  const std::string& error() const { return error_; }
  /// The last poll that still saw the first_seq it started with (the trim began after
  /// it, within one poll): the set time if the first poll saw it move.
  SteadyClock::time_point began_at() const {
    SteadyClock::time_point t = armed_at_;
    for (const auto& p : polls_) {
      if (p.first_seq != initial_) break;
      t = p.at;
    }
    return t;
  }
  /// The last poll at or before `t` (none: the start).
  Poll at_or_before(SteadyClock::time_point t) const {
    Poll last{armed_at_, initial_};
    for (const auto& p : polls_)
      if (p.at <= t) last = p;
    return last;
  }

 private:
  sb::client::Client client_;
  std::string room_;
  std::uint64_t target_ = 0, initial_ = 1;
  std::atomic<bool> armed_{false}, stop_{false};
  SteadyClock::time_point armed_at_{};
  std::vector<Poll> polls_;
  std::optional<SteadyClock::time_point> done_at_;
  std::string error_;
  std::thread thread_;
};

void print_row(const char* what, const Figures& f, const Figures& idle, bool with_window) {
  char window[48] = "";
  if (with_window) std::snprintf(window, sizeof window, " (%.1f s)", f.window_s);
  std::printf("| %s%s | %.0f | %.2fx | %.0f | %.0f | %.2fx | %zu |\n", what, window, f.per_second,
              f.per_second / idle.per_second, f.latency.p50_us, f.latency.p99_us, f.latency.p99_us / idle.latency.p99_us,
              f.latency.samples);
}

/// The head of the publishers' table whose rows print_row prints, set against `base`.
void print_head(const Config& config, const char* base) {
  const std::string how = config.in_flight <= 1
                              ? "each publish() waits for its ack"
                              : "publish_async, " + std::to_string(config.in_flight) + " in flight each";
  std::printf("\n| publishers (%d, %s) | publishes/s | x %s | median us | p99 us | p99 x %s | samples |\n"
              "|---|---|---|---|---|---|---|\n",
              config.publishers, how.c_str(), base, base);
}

/// A client per publisher, each with a room of its own ("pub-0", "pub-1", ...), connected
/// and warm before anything is timed.
std::vector<std::unique_ptr<sb::client::Client>> publisher_clients(sb::client::Client& admin, const std::string& endpoint,
                                                                   const Config& config, const std::string& body) {
  std::vector<std::unique_ptr<sb::client::Client>> clients;
  for (int i = 0; i < config.publishers; ++i) {
    const std::string room = "pub-" + std::to_string(i);
    if (auto made = admin.create_room(room, "bob"); !made) throw std::runtime_error("create_room: " + made.error().message);
    clients.push_back(std::make_unique<sb::client::Client>(client_options(endpoint, config.in_flight)));
    for (int k = 0; k < 100; ++k)
      if (auto ack = clients.back()->publish(room, "bob", body); !ack)
        throw std::runtime_error("warm-up publish: " + ack.error().message);
  }
  return clients;
}

int trim_mode(const Config& config) {
  if (config.messages <= config.trim_keep) throw std::runtime_error("--messages must be above --trim-keep");
  TempDir dir(config.base, "switchboard-retention-bench");
  auto begin = SteadyClock::now();
  fill(dir.path() / "a", config.messages);
  const FileSize filled = stat_file(dir.path() / "a" / "data.mdb");
  std::printf("store: room \"big\" with %llu messages of %zu-byte bodies, written straight into the store "
              "(%.1f s); data.mdb %.1f MB\n",
              static_cast<unsigned long long>(config.messages), kBody, seconds_between(begin, SteadyClock::now()),
              static_cast<double>(filled.size) / 1e6);
  std::fflush(stdout);

  auto nodes = start_in_process([&] { return topology(dir.path(), config); }, "retention-bench");
  const std::string endpoint = nodes.topology.nodes.at("a").client;
  sb::client::Client admin(client_options(endpoint));
  const std::string body(kBody, 'p');
  auto clients = publisher_clients(admin, endpoint, config, body);
  auto before = admin.set_retention(sb::transport::SetRetention{"big", {}, {}, {}});
  if (!before) throw std::runtime_error("set_retention (read) big: " + before.error().message);
  std::printf("node: started on that store; \"big\" first_seq %llu, its retention max_messages %llu (applied %llu)\n",
              static_cast<unsigned long long>(before->first_seq), static_cast<unsigned long long>(before->max_messages),
              static_cast<unsigned long long>(before->applied_max_messages));
  const Seconds duration(config.seconds);

  // 1. Publishers alone.
  Run idle = run_publishers(clients, config, duration, [] {});
  const Figures idle_f = figures(idle);
  std::printf("run 1, no trim: %llu acked in %.2f s\n", static_cast<unsigned long long>(idle.acked), idle.seconds());
  std::fflush(stdout);

  // 2. The same, from the moment "big" is set to keep trim_keep messages.
  TrimWatch watch(endpoint, "big", config.messages - config.trim_keep + 1, Seconds(config.trim_timeout));
  std::string set_error;
  Run busy = run_publishers(clients, config, duration, [&] {
    sb::transport::SetRetention set{"big", {}, config.trim_keep, {}};
    auto done = admin.set_retention(set);
    if (!done) {
      set_error = done.error().message;
      watch.wait();
      return;
    }
    watch.arm(before->first_seq);
  });
  if (!set_error.empty()) throw std::runtime_error("set_retention big max_messages: " + set_error);
  std::printf("run 2, with the trim: %llu acked in %.2f s\n", static_cast<unsigned long long>(busy.acked), busy.seconds());
  if (!watch.done_at()) std::printf("(publishers stopped; waiting for the trim to end)\n");
  std::fflush(stdout);
  watch.wait();
  if (!watch.done_at())
    throw std::runtime_error("the trim did not end within " + std::to_string(config.trim_timeout) +
                             " s (last first_seq " +
                             std::to_string(watch.polls().empty() ? 0 : watch.polls().back().first_seq) +
                             (watch.error().empty() ? "" : ", poll error: " + watch.error()) + ")");
  const auto trim_begin = watch.began_at(), trim_end = *watch.done_at();
  const std::uint64_t trimmed = watch.target() - watch.initial();

  // 3. Publishers alone again, after the trim: drift between runs 1 and 2 shows here.
  std::optional<Run> after;
  if (config.control) {
    after = run_publishers(clients, config, duration, [] {});
    std::printf("run 3, after the trim: %llu acked in %.2f s\n", static_cast<unsigned long long>(after->acked),
                after->seconds());
  }
  auto final_state = admin.set_retention(sb::transport::SetRetention{"big", {}, {}, {}});
  const FileSize end_size = stat_file(dir.path() / "a" / "data.mdb");

  const Figures busy_f = figures(busy);
  const Figures trimming_f = figures(busy, std::max(trim_begin, busy.begin), std::min(trim_end, busy.end));
  print_head(config, "idle");
  print_row("idle: no trim", idle_f, idle_f, false);
  print_row("during trim: the whole run from set_retention", busy_f, idle_f, false);
  if (trimming_f.window_s >= 0.2)
    print_row("during trim: only publishes begun while the trim ran", trimming_f, idle_f, true);
  else
    std::printf("| during trim: only publishes begun while the trim ran | (the trim ran %.2f s of the run: too short to "
                "tell) | | | | | |\n",
                std::max(0.0, trimming_f.window_s));
  if (after) print_row("idle again: after the trim (control)", figures(*after), idle_f, false);

  const double took = seconds_between(watch.armed_at(), trim_end);
  const double trimming_s = seconds_between(trim_begin, trim_end);
  std::printf("\ntrim: %llu messages (first_seq %llu -> %llu) in %.2f s from set_retention (of which %.2f s before the "
              "first step: the node looks at rooms once a second), trimming itself %.2f s: %.0f messages trimmed/s "
              "(times within one %lld ms poll)\n",
              static_cast<unsigned long long>(trimmed), static_cast<unsigned long long>(watch.initial()),
              static_cast<unsigned long long>(watch.target()), took, seconds_between(watch.armed_at(), trim_begin),
              trimming_s, static_cast<double>(trimmed) / trimming_s, static_cast<long long>(kPoll.count()));
  if (trim_begin < busy.end) {
    const auto last = watch.at_or_before(busy.end);
    const double s = seconds_between(trim_begin, last.at);
    if (s > 0)
      std::printf("trim while the publishers ran: %llu messages in %.2f s: %.0f trimmed/s; the trim ran %.1f of the "
                  "run's %.1f s\n",
                  static_cast<unsigned long long>(last.first_seq - watch.initial()), s,
                  static_cast<double>(last.first_seq - watch.initial()) / s,
                  std::max(0.0, seconds_between(trim_begin, std::min(trim_end, busy.end))), busy.seconds());
  } else {
    std::printf("the trim began after the publishers' run ended: run 2 saw no trim (raise --seconds)\n");
  }
  std::printf("issue's targets: publishers keep >= 0.90x of their idle throughput while the trim runs, and publish p99 "
              "<= 2.00x idle (see the x idle columns)\n");
  std::printf("\nafter: \"big\" first_seq %llu; data.mdb %.1f MB (st_size; %.1f MB on disk), %.1f MB after the fill "
              "(LMDB reuses freed pages, it does not shrink the file)\n",
              final_state ? static_cast<unsigned long long>(final_state->first_seq) : 0ull,
              static_cast<double>(end_size.size) / 1e6, static_cast<double>(end_size.disk) / 1e6,
              static_cast<double>(filled.size) / 1e6);
  std::printf("publish errors: %llu idle, %llu during the trim%s%s. Latency: from the call to its ack, every sample "
              "kept (%s). One run each, in this order, in one process: the node (durability %s) and the clients share "
              "its %u cores.\n",
              static_cast<unsigned long long>(idle.errors), static_cast<unsigned long long>(busy.errors),
              busy.first_error.empty() && idle.first_error.empty() ? "" : ", first: ",
              (busy.first_error.empty() ? idle.first_error : busy.first_error).c_str(), kPercentileMethod,
              config.durability.c_str(), std::thread::hardware_concurrency());
  return 0;
}

// ---------------------------------------------------------------------------------------
// alternate mode

/// Like trim mode, but the trim and its absence take turns on the same store within one
/// publishers' run: "big" gets max_messages K under a legal hold, and every --seconds
/// the hold is lifted or put back (held, trimming, trimming, held, held, ...: drift
/// between the start and the end of the run falls on both alike). Each window is
/// measured from `kSettle` after its switch (the node looks at rooms once a second; a
/// step under way when the hold comes back finishes).
int alternate_mode(const Config& config) {
  constexpr Seconds kSettle{1.5};
  if (config.messages <= config.trim_keep) throw std::runtime_error("--messages must be above --trim-keep");
  if (config.seconds <= kSettle.count() + 1) throw std::runtime_error("--seconds must be above 2.5 in this mode");
  TempDir dir(config.base, "switchboard-retention-bench");
  auto begin = SteadyClock::now();
  fill(dir.path() / "a", config.messages);
  std::printf("store: room \"big\" with %llu messages of %zu-byte bodies, written straight into the store (%.1f s)\n",
              static_cast<unsigned long long>(config.messages), kBody, seconds_between(begin, SteadyClock::now()));
  auto nodes = start_in_process([&] { return topology(dir.path(), config); }, "retention-bench");
  const std::string endpoint = nodes.topology.nodes.at("a").client;
  sb::client::Client admin(client_options(endpoint));
  const std::string body(kBody, 'p');
  auto clients = publisher_clients(admin, endpoint, config, body);
  auto hold = [&](bool on) {
    auto set = admin.set_retention(sb::transport::SetRetention{"big", {}, {}, on});
    if (!set) throw std::runtime_error(std::string("set_retention legal_hold: ") + set.error().message);
  };
  auto first_seq = [&] {
    auto read = admin.set_retention(sb::transport::SetRetention{"big", {}, {}, {}});
    if (!read) throw std::runtime_error("set_retention (read): " + read.error().message);
    return read->first_seq;
  };
  hold(true);
  if (auto set = admin.set_retention(sb::transport::SetRetention{"big", {}, config.trim_keep, {}}); !set)
    throw std::runtime_error("set_retention max_messages: " + set.error().message);
  const int windows = 2 * config.pairs;  // in groups of held, trimming, trimming, held
  auto trimming = [](int w) { return w % 4 == 1 || w % 4 == 2; };
  std::printf("node: \"big\" set to keep %llu under a legal hold; %d publishers for %d windows of %.1f s, the hold "
              "lifted in windows 2, 3, 6, 7, ... (each measured from %.1f s after its switch)\n",
              static_cast<unsigned long long>(config.trim_keep), config.publishers, windows, config.seconds,
              kSettle.count());
  std::fflush(stdout);

  struct Mark {
    SteadyClock::time_point from, to;
    std::uint64_t first_from = 0, first_to = 0;  ///< "big"'s first_seq at the measured part's ends
  };
  std::vector<Mark> marks(static_cast<std::size_t>(windows));
  const Seconds window(config.seconds);
  std::string failure;
  Run run = run_publishers(clients, config, window * windows, [&] {
    const auto start = SteadyClock::now();
    try {
      for (int w = 0; w < windows; ++w) {
        const auto at = start + std::chrono::duration_cast<SteadyClock::duration>(window * w);
        std::this_thread::sleep_until(at);
        if (w == 0 || trimming(w) != trimming(w - 1)) hold(!trimming(w));
        Mark& m = marks[static_cast<std::size_t>(w)];
        m.from = at + std::chrono::duration_cast<SteadyClock::duration>(kSettle);
        m.to = at + std::chrono::duration_cast<SteadyClock::duration>(window);
        std::this_thread::sleep_until(m.from);
        m.first_from = first_seq();
        std::this_thread::sleep_until(m.to - std::chrono::milliseconds(5));
        m.first_to = first_seq();
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw std::runtime_error(failure);

  std::printf("\n| window | hold | publishes/s | median us | p99 us | \"big\" trimmed in it |\n|---|---|---|---|---|---|\n");
  std::vector<std::pair<SteadyClock::time_point, SteadyClock::time_point>> held_w, trim_w;
  std::vector<double> pair_ratios;
  double before_rate = 0;  ///< the window before this one
  std::uint64_t trimmed = 0, trimmed_held = 0;
  for (int w = 0; w < windows; ++w) {
    const Mark& m = marks[static_cast<std::size_t>(w)];
    const Figures f = figures(run, m.from, m.to);
    const std::uint64_t moved = m.first_to - m.first_from;
    std::printf("| %d | %s | %.0f | %.0f | %.0f | %llu |\n", w + 1, trimming(w) ? "lifted" : "on", f.per_second,
                f.latency.p50_us, f.latency.p99_us, static_cast<unsigned long long>(moved));
    (trimming(w) ? trim_w : held_w).emplace_back(m.from, m.to);
    (trimming(w) ? trimmed : trimmed_held) += moved;
    // Each trimming window against the held window beside it in its group (H T | T H).
    if (w % 4 == 1) pair_ratios.push_back(f.per_second / before_rate);
    if (w % 4 == 3) pair_ratios.push_back(before_rate / f.per_second);
    before_rate = f.per_second;
  }
  const Figures held_f = figures_over(run, held_w), trim_f = figures_over(run, trim_w);
  std::sort(pair_ratios.begin(), pair_ratios.end());
  const double median_ratio = pair_ratios.empty() ? std::nan("")
                              : pair_ratios.size() % 2 ? pair_ratios[pair_ratios.size() / 2]
                                                       : (pair_ratios[pair_ratios.size() / 2 - 1] +
                                                          pair_ratios[pair_ratios.size() / 2]) / 2;
  const double trim_s = trim_f.window_s;
  print_head(config, "held");
  print_row("hold on: no trim", held_f, held_f, true);
  print_row("hold lifted: trimming", trim_f, held_f, true);
  std::printf("\nthroughput while trimming against the held window beside it, per pair: median %.2fx (min %.2fx, max "
              "%.2fx, %zu pairs)\n",
              median_ratio, pair_ratios.empty() ? std::nan("") : pair_ratios.front(),
              pair_ratios.empty() ? std::nan("") : pair_ratios.back(), pair_ratios.size());
  std::printf("trimmed while the hold was lifted: %llu messages in %.1f s measured (%.0f/s); while it was on: %llu\n",
              static_cast<unsigned long long>(trimmed), trim_s, static_cast<double>(trimmed) / trim_s,
              static_cast<unsigned long long>(trimmed_held));
  std::printf("issue's targets: publishers keep >= 0.90x of their throughput without the trim while it runs, and "
              "publish p99 <= 2.00x (the x held columns)\n");
  std::printf("publish errors: %llu%s%s. Latency: from the call to its ack (%s). One process: the node (durability %s) "
              "and the clients share its %u cores.\n",
              static_cast<unsigned long long>(run.errors), run.first_error.empty() ? "" : ", first: ",
              run.first_error.c_str(), kPercentileMethod, config.durability.c_str(), std::thread::hardware_concurrency());
  return 0;
}

// ---------------------------------------------------------------------------------------
// soak mode

/// Publishes pipelined at `rate` a second, in steps of up to 100 messages, step s into
/// room "soak-<(index + s * publishers) % rooms>": all publishers together give every
/// room the same share.
struct PacedPublisher {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0}, errors{0};
  std::thread thread;
  PacedPublisher(const std::string& endpoint, int index, int publishers, int rooms, double rate) {
    thread = std::thread([this, endpoint, index, publishers, rooms, rate] {
      sb::client::Client c(client_options(endpoint));
      const std::string body(kBody, 's');
      const std::uint64_t step = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(rate / 50), 1, 100);
      const auto start = SteadyClock::now();
      for (std::uint64_t s = 0; !stop.load(); ++s) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<SteadyClock::duration>(
                                                  Seconds(static_cast<double>(s * step) / rate)));
        const std::string room =
            "soak-" + std::to_string((static_cast<std::uint64_t>(index) + s * static_cast<std::uint64_t>(publishers)) %
                                     static_cast<std::uint64_t>(rooms));
        for (std::uint64_t k = 0; k < step; ++k)
          c.publish_async(room, "bob", body, [this](const auto& ack) { ack ? ++acked : ++errors; });
      }
      c.wait_all();
    });
  }
  ~PacedPublisher() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

struct SoakSample {
  double elapsed_s = 0;
  std::uint64_t acked = 0, errors = 0;
  double rate = 0;  ///< acks a second since the last sample
  std::uint64_t first_min = 0, first_max = 0, held_min = 0, held_max = 0;
  FileSize file;
  Rss rss;
};

struct DedupLimits {
  double window_s = 600;
  std::uint64_t entries = 1'000'000;
};
/// The dedup window and size the node runs with: transport::Limits' defaults, or --limit's.
DedupLimits dedup_limits(const Config& config) {
  const sb::transport::Limits defaults;
  DedupLimits out{std::chrono::duration<double>(defaults.dedup_window).count(), defaults.dedup_max_entries};
  for (const auto& line : config.limits) {
    const auto eq = line.find(" = ");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    if (key == "dedup_window_ms") out.window_s = std::stod(value) / 1000;
    if (key == "dedup_max_entries") out.entries = std::stoull(value);
  }
  return out;
}

int soak_mode(const Config& config) {
  TempDir dir(config.base, "switchboard-retention-soak");
  auto nodes = start_in_process([&] { return topology(dir.path(), config); }, "retention-soak");
  const std::string endpoint = nodes.topology.nodes.at("a").client;
  sb::client::Client admin(client_options(endpoint));
  std::vector<std::string> rooms;
  for (int r = 0; r < config.rooms; ++r) {
    rooms.push_back("soak-" + std::to_string(r));
    if (auto made = admin.create_room(rooms.back(), "bob"); !made)
      throw std::runtime_error("create_room: " + made.error().message);
    auto set = admin.set_retention(sb::transport::SetRetention{rooms.back(), {}, config.keep, {}});
    if (!set) throw std::runtime_error("set_retention: " + set.error().message);
  }
  const fs::path data = dir.path() / "a" / "data.mdb";
  const int publishers = std::max(1, config.publishers);
  std::printf("soak: %d rooms keeping %llu messages each, %d publishers paced to %llu msg/s in all (100-byte bodies, "
              "pipelined), %.1f min; a fill to the bound takes about %.0f s\n"
              "RSS: VmRSS of this process (/proc/self/status), which holds the node, the %d publishers' clients and "
              "this bench; anon: RssAnon (heap, stacks), file: RssFile (mapped files: LMDB's map of data.mdb, as far "
              "as its pages were touched)\n\n",
              config.rooms, static_cast<unsigned long long>(config.keep), publishers,
              static_cast<unsigned long long>(config.rate), config.minutes,
              static_cast<double>(config.keep) * config.rooms / static_cast<double>(config.rate), publishers);
  std::printf("| elapsed s | acked | msg/s (interval) | errors | first_seq min..max | held min..max | data.mdb st_size MB | "
              "on disk MB | RSS MB | anon MB | file MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);

  std::vector<SoakSample> samples;
  {
    std::vector<std::unique_ptr<PacedPublisher>> pubs;
    const auto start = SteadyClock::now();
    for (int i = 0; i < publishers; ++i)
      pubs.push_back(std::make_unique<PacedPublisher>(endpoint, i, publishers, config.rooms,
                                                      static_cast<double>(config.rate) / publishers));
    const double total = config.minutes * 60;
    std::uint64_t last_acked = 0;
    double last_t = 0;
    for (int k = 1;; ++k) {
      const double at = std::min(total, k * config.interval);
      std::this_thread::sleep_until(start + std::chrono::duration_cast<SteadyClock::duration>(Seconds(at)));
      SoakSample s;
      s.elapsed_s = seconds_between(start, SteadyClock::now());
      for (const auto& p : pubs) {
        s.acked += p->acked.load();
        s.errors += p->errors.load();
      }
      s.rate = static_cast<double>(s.acked - last_acked) / (s.elapsed_s - last_t);
      last_acked = s.acked;
      last_t = s.elapsed_s;
      s.first_min = s.held_min = UINT64_MAX;
      for (const auto& room : rooms) {
        auto kept = admin.set_retention(sb::transport::SetRetention{room, {}, {}, {}});
        auto last = admin.last_seq(room);
        if (!kept || !last) throw std::runtime_error("reading " + room + ": " + (kept ? last.error() : kept.error()).message);
        const std::uint64_t held = *last + 1 - std::min(kept->first_seq, *last + 1);
        s.first_min = std::min(s.first_min, kept->first_seq);
        s.first_max = std::max(s.first_max, kept->first_seq);
        s.held_min = std::min(s.held_min, held);
        s.held_max = std::max(s.held_max, held);
      }
      s.file = stat_file(data);
      s.rss = rss_bytes();
      samples.push_back(s);
      std::printf("| %.0f | %llu | %.0f | %llu | %llu..%llu | %llu..%llu | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.elapsed_s,
                  static_cast<unsigned long long>(s.acked), s.rate, static_cast<unsigned long long>(s.errors),
                  static_cast<unsigned long long>(s.first_min), static_cast<unsigned long long>(s.first_max),
                  static_cast<unsigned long long>(s.held_min), static_cast<unsigned long long>(s.held_max),
                  static_cast<double>(s.file.size) / 1e6, static_cast<double>(s.file.disk) / 1e6,
                  static_cast<double>(s.rss.total) / 1e6, static_cast<double>(s.rss.anon) / 1e6,
                  static_cast<double>(s.rss.file) / 1e6);
      std::fflush(stdout);
      if (at >= total) break;
    }
  }  // publishers stop

  const SoakSample& last = samples.back();
  std::printf("\npublished: %llu acked in %.0f s (%.0f msg/s, asked %llu), %llu errors\n",
              static_cast<unsigned long long>(last.acked), last.elapsed_s,
              static_cast<double>(last.acked) / last.elapsed_s, static_cast<unsigned long long>(config.rate),
              static_cast<unsigned long long>(last.errors));
  auto first_trimmed = std::find_if(samples.begin(), samples.end(), [](const SoakSample& s) { return s.first_max > 1; });
  if (first_trimmed == samples.end()) {
    std::printf("no room was trimmed during the run (no first_seq above 1): nothing to say about flatness after the "
                "first trim; run longer, or lower --keep\n");
    return 0;
  }
  const SoakSample& base = *first_trimmed;
  double max_disk = 0, max_size = 0, max_rss = 0, max_anon = 0;
  for (auto it = first_trimmed; it != samples.end(); ++it) {
    max_disk = std::max(max_disk, static_cast<double>(it->file.disk));
    max_size = std::max(max_size, static_cast<double>(it->file.size));
    max_rss = std::max(max_rss, static_cast<double>(it->rss.total));
    max_anon = std::max(max_anon, static_cast<double>(it->rss.anon));
  }
  std::printf("after the first trim (first sample with a first_seq above 1: %.0f s; last sample %.0f s, %zu samples "
              "from it on):\n",
              base.elapsed_s, last.elapsed_s, static_cast<std::size_t>(samples.end() - first_trimmed));
  auto line = [](const char* what, double from, double to, double peak) {
    std::printf("  %-22s %.1f MB -> %.1f MB: %+.1f%% (peak %.1f MB, %+.1f%%)\n", what, from / 1e6, to / 1e6,
                growth_percent(from, to), peak / 1e6, growth_percent(from, peak));
  };
  line("data.mdb on disk", static_cast<double>(base.file.disk), static_cast<double>(last.file.disk), max_disk);
  line("data.mdb st_size", static_cast<double>(base.file.size), static_cast<double>(last.file.size), max_size);
  line("RSS (this process)", static_cast<double>(base.rss.total), static_cast<double>(last.rss.total), max_rss);
  line("  of it anon", static_cast<double>(base.rss.anon), static_cast<double>(last.rss.anon), max_anon);
  // The node remembers publishes for deduplication (transport::Limits: dedup_window,
  // dedup_max_entries): its memory grows until that is full, whatever retention does.
  const DedupLimits dedup = dedup_limits(config);
  const double rate = static_cast<double>(last.acked) / last.elapsed_s;
  const double dedup_full_s = std::min(dedup.window_s, static_cast<double>(dedup.entries) / std::max(rate, 1.0));
  auto settled = std::find_if(first_trimmed, samples.end(),
                              [&](const SoakSample& s) { return s.elapsed_s >= dedup_full_s; });
  std::printf("  the node's dedup memory (%llu publishes at most, for %.0f s) is full at about %.0f s here: ",
              static_cast<unsigned long long>(dedup.entries), dedup.window_s, dedup_full_s);
  if (settled != samples.end() && settled + 1 != samples.end())
    std::printf("RSS from then on (%.0f s) %.1f MB -> %.1f MB: %+.1f%% (anon %+.1f%%)\n", settled->elapsed_s,
                static_cast<double>(settled->rss.total) / 1e6, static_cast<double>(last.rss.total) / 1e6,
                growth_percent(static_cast<double>(settled->rss.total), static_cast<double>(last.rss.total)),
                growth_percent(static_cast<double>(settled->rss.anon), static_cast<double>(last.rss.anon)));
  else
    std::printf("too late in this run for an RSS figure from then on\n");
  std::printf("(the rooms hold %llu..%llu messages at the end, bound %llu each; node durability %s)\n",
              static_cast<unsigned long long>(last.held_min), static_cast<unsigned long long>(last.held_max),
              static_cast<unsigned long long>(config.keep), config.durability.c_str());
  return 0;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--mode trim|alternate|soak] [--dir DIR] [--durability sync|nosync] [--publishers P] [--limit key=value]...\n"
               "  trim: [--messages N] [--seconds S] [--trim-keep K] [--in-flight W] [--control on|off] [--trim-timeout S]\n"
               "  alternate: [--messages N] [--seconds S (each window)] [--pairs N] [--trim-keep K] [--in-flight W]\n"
               "  soak: [--rooms K] [--keep M] [--rate R] [--minutes D] [--interval S]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  std::string command = argv[0];
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  try {
    for (int i = 1; i < argc; i += 2) {
      const std::string a = argv[i];
      if (i + 1 >= argc) return usage(argv[0]);
      const std::string v = argv[i + 1];
      if (a == "--mode" && (v == "trim" || v == "alternate" || v == "soak")) config.mode = v;
      else if (a == "--pairs") config.pairs = std::max(1, std::stoi(v));
      else if (a == "--messages") config.messages = std::stoull(v);
      else if (a == "--trim-keep") config.trim_keep = std::max<std::uint64_t>(1, std::stoull(v));
      else if (a == "--publishers") config.publishers = std::max(1, std::stoi(v));
      else if (a == "--seconds") config.seconds = std::max(0.1, std::stod(v));
      else if (a == "--in-flight") config.in_flight = std::max<std::size_t>(1, std::stoull(v));
      else if (a == "--control") config.control = v != "off";
      else if (a == "--trim-timeout") config.trim_timeout = std::stod(v);
      else if (a == "--rooms") config.rooms = std::max(1, std::stoi(v));
      else if (a == "--keep") config.keep = std::max<std::uint64_t>(1, std::stoull(v));
      else if (a == "--rate") config.rate = std::max<std::uint64_t>(1, std::stoull(v));
      else if (a == "--minutes") config.minutes = std::max(0.01, std::stod(v));
      else if (a == "--interval") config.interval = std::max(1.0, std::stod(v));
      else if (a == "--durability" && (v == "sync" || v == "nosync")) config.durability = v;
      else if (a == "--dir") config.base = v;
      else if (a == "--limit" && v.find('=') != std::string::npos)
        config.limits.push_back(v.substr(0, v.find('=')) + " = " + v.substr(v.find('=') + 1));
      else return usage(argv[0]);
    }
  } catch (const std::exception&) {
    return usage(argv[0]);
  }
  spdlog::set_level(spdlog::level::err);
  std::printf("retention_bench: %s\n%u cores (%s), load %s, data under %s (%s), node in this process on loopback tcp, "
              "durability %s%s\n",
              command.c_str(), std::thread::hardware_concurrency(), cpu_model().c_str(), loadavg().c_str(),
              config.base.c_str(), filesystem_of(config.base).c_str(), config.durability.c_str(),
              config.limits.empty() ? ", [limits] none (no retention caps or defaults)" : "");
  for (const auto& line : config.limits) std::printf("[limits] %s\n", line.c_str());
  try {
    return config.mode == "soak" ? soak_mode(config) : config.mode == "alternate" ? alternate_mode(config) : trim_mode(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "retention_bench: %s\n", e.what());
    return 1;
  }
}
