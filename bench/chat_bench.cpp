// The chat actor alone, on one thread, without sockets: what a publish costs in chat's
// handler (decode, rules, seq, retry window, batch, ack, message frame), the part of the
// node that runs on one core for every publish. Persistence is played by the benchmark:
// each batch is confirmed as soon as it is handed over (and freed). Google Benchmark;
// deterministic enough for `valgrind --tool=callgrind` instruction counts too.
//
//   build/bench/chat_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "switchboard/actors/chat.hpp"
#include "switchboard/transport/codec.hpp"

namespace sb = switchboard;
using namespace sb::actors;

namespace {

class ChatRig {
 public:
  ChatRig() : chat_(ChatOptions{}, sb::persistence::Snapshot{}) {
    chat_.on_start({"inproc://chat"}, {}, now_, fx_);
    frame_in(sb::transport::encode_request({1, sb::transport::CreateRoom{"bench", "ann"}}));
    settle();
  }
  /// One request frame through the handler, then one read round.
  void frame_in(std::string frame) {
    Inbound in;
    in.via = Inbound::Via::mailbox;
    in.sender = "client";
    in.frames = {frame};
    chat_.on_message(in, now_, fx_);
    chat_.on_drained(now_, fx_);
  }
  /// Persistence confirms every batch handed over; the replies and messages are dropped.
  std::size_t settle() {
    std::size_t out = 0;
    while (!fx_.empty()) {
      Effects effects = std::move(fx_);
      fx_.clear();
      for (const auto& e : effects.list()) {
        if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence") {
          auto m = store::receive(s->payload);
          if (!m) continue;
          if (auto* append = std::get_if<store::Append>(&*m)) {
            Inbound in;
            in.via = Inbound::Via::peer;
            in.sender = "persistence";
            const std::string done = store::encode(store::Appended{append->batch, sb::Error{sb::errc::ok, {}}});
            in.frames = {done};
            chat_.on_message(in, now_, fx_);
            chat_.on_drained(now_, fx_);
          }
        } else {
          ++out;
        }
      }
    }
    now_.wall_ms += 1;
    return out;
  }

 private:
  Chat chat_;
  Now now_{SteadyClock::time_point{}, 1'700'000'000'000};
  Effects fx_;
};

std::string cmid(std::uint64_t n) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", 0x5ca1ab1e5ca1ab1eULL, static_cast<unsigned long long>(n));
  return text;
}

/// Frames of `items` publishes of 100 B (one publish per frame when items is 1).
void BM_ChatPublish(benchmark::State& state) {
  const auto items = static_cast<std::size_t>(state.range(0));
  ChatRig rig;
  const std::string body(100, 'x');
  std::uint64_t n = 0, id = 2;
  std::vector<std::string> frames(8);
  for (auto _ : state) {
    // A round as the node sees it under load: several frames wait, then one group commit.
    state.PauseTiming();  // the clients' encoding is not chat's work
    for (auto& frame : frames) {
      if (items == 1) {
        frame = sb::transport::encode_request({id++, sb::transport::Publish{"bench", "ann", cmid(n++), body}});
      } else {
        sb::transport::PublishBatch b{"bench", "ann", {}};
        for (std::size_t i = 0; i < items; ++i) b.items.push_back({cmid(n++), body});
        frame = sb::transport::encode_request({id++, std::move(b)});
      }
    }
    state.ResumeTiming();
    for (auto& frame : frames) rig.frame_in(std::move(frame));
    benchmark::DoNotOptimize(rig.settle());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["ns_per_msg"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ChatPublish)->Arg(1)->Arg(100)->Arg(500);

}  // namespace

BENCHMARK_MAIN();
