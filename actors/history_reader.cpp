#include "switchboard/actors/history_reader.hpp"

#include <spdlog/spdlog.h>

#include "switchboard/actors/metrics.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

store::Page read_page(const persistence::HistoryStore::Reader& store, const store::Read& read,
                      const HistoryReaderOptions& options) {
  persistence::PageQuery query;
  query.mode = read.mode == store::Read::Mode::before  ? persistence::PageQuery::Mode::before
               : read.mode == store::Read::Mode::after ? persistence::PageQuery::Mode::after
                                                       : persistence::PageQuery::Mode::newest;
  query.seq = read.seq;
  query.limit = read.limit;
  query.up_to = read.up_to;  // nothing stored but not acknowledged yet
  query.max_bytes = options.max_page_bytes;
  auto page = store.page_maps(read.room, query);
  std::string frame;
  if (!page) {
    const errc code = page.error().code == errc::no_such_room ? errc::no_such_room : errc::unavailable;
    frame = transport::encode_reply({read.reply_id, transport::ErrorReply{code, page.error().message}});
    if (auto* m = options.metrics) m->messages.error(code);
  } else {
    frame = transport::encode_history_reply(read.reply_id, page->count, page->maps, page->more);
  }
  if (auto* m = options.metrics) m->messages.sent(1);
  return store::Page{read.corr, std::move(frame)};
}

void HistoryReader::on_message(const Inbound& in, const Now&, Effects& out) {
  if (in.frames.size() != 1) {
    spdlog::error("history reader: {}-frame message from {}", in.frames.size(), in.sender);
    return;
  }
  auto message = store::receive(in.frames[0]);  // only chat of this node sends here
  auto* read = message ? std::get_if<store::Read>(&*message) : nullptr;
  if (read == nullptr) {
    spdlog::error("history reader: {} from {}", message ? "a message that is not a read" : message.error().message,
                  in.sender);
    return;
  }
  if (auto* m = options_.metrics) m->messages.received(1);
  out.reply(std::string(in.sender), store::encode(read_page(store_, *read, options_)));
}

}  // namespace switchboard::actors
