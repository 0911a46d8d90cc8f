// What a subscriber pays to read what the node sends, apart from sockets: one history
// page of 1000 messages and one room message, decoded the ways the client library can
// (Google Benchmark). For profiling the read path's last step.
//
//   build/bench/codec_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "switchboard/common/message_map.hpp"
#include "switchboard/transport/codec.hpp"

namespace sb = switchboard;

namespace {

/// A history reply of `count` messages of `body_bytes`, as the node sends it.
std::string history_page(std::size_t count, std::size_t body_bytes) {
  std::string maps;
  const std::string body(body_bytes, 'x');
  char id[40];
  for (std::size_t seq = 1; seq <= count; ++seq) {
    std::snprintf(id, sizeof id, "%032zx", seq);
    maps += sb::encode_message_map("history", seq, "alice", 1'700'000'000'000, body, id);
  }
  return sb::transport::encode_history_reply(7, count, maps, false);
}

void BM_DecodeHistoryPage(benchmark::State& state) {
  const std::string frame = history_page(static_cast<std::size_t>(state.range(0)), 100);
  const sb::transport::Limits limits;
  for (auto _ : state) {
    auto reply = sb::transport::decode_reply(frame, limits);
    if (!reply) state.SkipWithError(reply.error().message.c_str());
    benchmark::DoNotOptimize(reply);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(frame.size()));
}
BENCHMARK(BM_DecodeHistoryPage)->Arg(1000);

/// The same page read in place (what Client::read_history and history_page hand over).
void BM_HistoryPageInPlace(benchmark::State& state) {
  const std::string frame = history_page(static_cast<std::size_t>(state.range(0)), 100);
  const sb::transport::Limits limits;
  for (auto _ : state) {
    auto read = sb::transport::ReplyFrame::read(frame, limits);
    auto page = read ? read->history_page() : sb::Result<sb::transport::HistoryPage>(read.error());
    if (!page) state.SkipWithError(page.error().message.c_str());
    benchmark::DoNotOptimize(page);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(frame.size()));
}
BENCHMARK(BM_HistoryPageInPlace)->Arg(1000);

void BM_DecodeRoomMessage(benchmark::State& state) {
  const std::string frame = sb::transport::encode_message("history", 42, "alice", 1'700'000'000'000,
                                                          std::string(100, 'x'), "0123456789abcdef0123456789abcdef");
  const sb::transport::Limits limits;
  for (auto _ : state) {
    auto m = sb::transport::decode_message(frame, limits);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeRoomMessage);

}  // namespace

BENCHMARK_MAIN();
