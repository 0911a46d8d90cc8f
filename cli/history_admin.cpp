// The operator's commands on a room's history: retention, trim and import
// (docs/PROTOCOL.md 4.13 and 4.14; README "Retention" and "Backup and restore").
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "switchboard/cli/commands.hpp"
#include "switchboard/client/client.hpp"

namespace switchboard::cli {

using client::Client;

int retention(const ClientArgs& args, const RetentionArgs& set) {
  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  Client c(*options);
  transport::SetRetention request{args.room, set.max_age_s, set.max_messages, std::nullopt};
  if (!set.legal_hold.empty()) {
    if (set.legal_hold != "on" && set.legal_hold != "off")
      return fail("--legal-hold", Error{errc::bad_field, "'" + set.legal_hold + "' is not on or off"});
    request.legal_hold = set.legal_hold == "on";
  }
  auto r = c.set_retention(request);
  if (!r) return fail("retention of '" + args.room + "'", r.error());
  if (args.json) {
    nlohmann::json j = {{"room", r->room},
                        {"max_age_s", r->max_age_s},
                        {"max_messages", r->max_messages},
                        {"legal_hold", r->legal_hold},
                        {"applied_max_age_s", r->applied_max_age_s},
                        {"applied_max_messages", r->applied_max_messages},
                        {"first_seq", r->first_seq}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  auto bound = [](std::uint64_t v, const char* unit) { return v == 0 ? std::string("none") : std::to_string(v) + unit; };
  std::cout << "room " << r->room << ": keeps messages for " << bound(r->applied_max_age_s, " s") << ", at most "
            << bound(r->applied_max_messages, " messages") << (r->legal_hold ? "; under a legal hold: nothing is removed" : "")
            << "\n  its own setting: max age " << bound(r->max_age_s, " s") << ", max messages "
            << bound(r->max_messages, "") << " (none: the node's default)\n  its history starts at seq " << r->first_seq
            << "\n";
  return 0;
}

int trim(const ClientArgs& args, std::uint64_t before) {
  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  Client c(*options);
  // Each request removes a bounded step; it is asked again until the room starts there.
  std::uint64_t first = 0;
  for (;;) {
    auto r = c.trim_history(args.room, before);
    if (!r) return fail("trim of '" + args.room + "'", r.error());
    if (*r == first || *r >= before) {
      first = *r;
      break;
    }
    first = *r;
  }
  std::cout << "room " << args.room << " starts at seq " << first << "\n";
  return 0;
}

namespace {

/// One line of an export, checked: the error names what is wrong with it.
Result<std::pair<std::uint64_t, transport::ImportItem>> read_line(const std::string& line) {
  auto bad = [](std::string why) { return make_error(errc::bad_field, std::move(why)); };
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return bad("not JSON");
  if (!j.is_object()) return bad("not a JSON object");
  auto count = [&](const char* key, auto check) { return j.contains(key) && check(j[key]); };
  if (!count("seq", [](const auto& v) { return v.is_number_unsigned() && v.template get<std::uint64_t>() > 0; }))
    return bad("'seq' must be a number of 1 or more");
  if (!count("user", [](const auto& v) { return v.is_string() && !v.template get<std::string>().empty(); }))
    return bad("'user' must be a non-empty string");
  if (!count("ts", [](const auto& v) { return v.is_number_unsigned(); }))
    return bad("'ts' must be a time in ms since the epoch");
  if (!count("body", [](const auto& v) { return v.is_string(); })) return bad("'body' must be a string");
  if (!count("cmid", [](const auto& v) { return v.is_string() && !v.template get<std::string>().empty(); }))
    return bad("'cmid' must be a non-empty string");
  transport::ImportItem item{j["user"].get<std::string>(), j["ts"].get<std::uint64_t>(), j["cmid"].get<std::string>(),
                             j["body"].get<std::string>()};
  if (j.contains("mentions")) {
    const auto& m = j["mentions"];
    if (!m.is_array()) return bad("'mentions' must be an array of user names");
    for (const auto& name : m) {
      if (!name.is_string()) return bad("'mentions' must be an array of user names");
      item.mentions.push_back(name.get<std::string>());
    }
  }
  return std::pair{j["seq"].get<std::uint64_t>(), std::move(item)};
}

/// Standard input a line at a time, through POSIX getline (glibc's buffered scan for
/// the newline): std::getline on std::cin, synced with stdio, read a character at a
/// time and took half an import's time.
class StdinLines {
 public:
  StdinLines() = default;
  StdinLines(const StdinLines&) = delete;
  StdinLines& operator=(const StdinLines&) = delete;
  ~StdinLines() { std::free(buffer_); }
  /// The next line into `line`, without its newline; false at the end of the input.
  bool next(std::string& line) {
    const ssize_t n = ::getline(&buffer_, &capacity_, stdin);
    if (n < 0) return false;
    const auto size = static_cast<std::size_t>(n);
    line.assign(buffer_, size - (buffer_[size - 1] == '\n' ? 1 : 0));
    return true;
  }

 private:
  char* buffer_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace

int import_room(const ClientArgs& args, std::size_t batch_items) {
  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  options->max_in_flight = batch_items * 4;  // a few batches on their way while the next is read
  Client c(*options);
  const auto started = std::chrono::steady_clock::now();
  auto last = c.last_seq(args.room);
  if (!last) {
    if (last.error().code == errc::no_such_room)
      std::cerr << "switchboard: import: create the room first (switchboard room create --room " << args.room
                << " --user OWNER), then import into it\n";
    return fail("import into '" + args.room + "'", last.error());
  }
  // A room that holds messages takes only the rest of the same export (an import that
  // stopped): the file's message at the room's last seq must be the one stored there.
  const std::uint64_t held = *last;
  std::optional<transport::RoomMessage> stored_last;
  if (held > 0) {
    auto page = c.history(args.room, {1, std::nullopt, held - 1});
    if (!page) return fail("import into '" + args.room + "'", page.error());
    if (!page->messages.empty() && page->messages.front().seq == held) stored_last = page->messages.front();
  }

  std::string line;
  std::uint64_t line_no = 0, expected = 0, imported = 0, acked_to = held, skipped = 0;
  transport::ImportBatch batch{args.room, 0, {}};
  std::size_t batch_bytes = 0;
  std::optional<Error> failed;
  std::uint64_t failed_at = 0;
  std::uint64_t batch_line = 0;  // the line of the batch's first item: a refusal names it
  auto send = [&] {
    if (batch.items.empty()) return;
    const std::uint64_t count = batch.items.size(), at_line = batch_line;
    c.import_batch_async(std::move(batch), [&, count, at_line](const Result<transport::ImportBatchOk>& ok) {
      if (failed) return;
      if (!ok) {
        failed = ok.error();
        failed_at = at_line;
        return;
      }
      imported += count;
      acked_to = std::max(acked_to, ok->last_seq);
    });
    batch = transport::ImportBatch{args.room, 0, {}};
    batch_bytes = 0;
  };
  // A bad line: what was sent before it is stored (or refused, and said), nothing after.
  auto stop = [&](const std::string& why, bool fixable = true) {
    c.wait_all();
    std::cerr << "switchboard: import: line " << line_no << ": " << why << "\n";
    if (failed)
      std::cerr << "switchboard: import: the batch from line " << failed_at << " was refused: "
                << errc_name(failed->code) << ": " << failed->message << "\n";
    if (fixable)
      std::cerr << "switchboard: import: room '" << args.room << "' holds messages up to seq " << acked_to
                << ": nothing past it was imported; fix the line and run the import again: it goes on from there\n";
    return 1;
  };
  StdinLines input;
  while (!failed && input.next(line)) {
    ++line_no;
    if (line.empty()) continue;
    auto parsed = read_line(line);
    if (!parsed) return stop(parsed.error().message);
    auto& [seq, item] = *parsed;
    if (expected != 0 && seq != expected)
      return stop("seq " + std::to_string(seq) + " where seq " + std::to_string(expected) +
                  " was due: an export's lines are consecutive");
    if (expected == 0 && held > 0 && seq > held + 1)
      return stop("the file starts at seq " + std::to_string(seq) + ", but room '" + args.room +
                  "' holds messages up to seq " + std::to_string(held) +
                  ": an import goes into an empty room, or goes on with the rest of the file it began",
                  false);
    expected = seq + 1;
    if (seq < held) {
      ++skipped;
      continue;
    }
    if (seq == held) {  // the room's last message: it must be this file's
      if (!stored_last || stored_last->user != item.user || stored_last->client_msg_id != item.client_msg_id ||
          stored_last->ts_ms != item.ts_ms)
        return stop("room '" + args.room + "' holds messages up to seq " + std::to_string(held) +
                    " that are not this file's: an import goes into an empty room only",
                    false);
      ++skipped;
      continue;
    }
    if (batch.items.empty()) {
      batch.first_seq = seq;
      batch_line = line_no;
    }
    batch_bytes += item.body.size() + item.user.size() + item.client_msg_id.size() + 32;
    batch.items.push_back(std::move(item));
    if (batch.items.size() >= batch_items || batch_bytes >= (512u << 10)) send();
  }
  if (!failed) send();
  c.wait_all();
  if (failed) {
    std::cerr << "switchboard: import: the batch from line " << failed_at << " was refused: "
              << errc_name(failed->code) << ": " << failed->message << "\n";
    std::cerr << "switchboard: import: room '" << args.room << "' holds messages up to seq " << acked_to
              << "; run the import again to go on from there\n";
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "import: %llu messages into '%s'%s, up to seq %llu (%.1f s)\n",
               static_cast<unsigned long long>(imported), args.room.c_str(),
               skipped ? (", " + std::to_string(skipped) + " there already").c_str() : "",
               static_cast<unsigned long long>(acked_to), seconds);
  return 0;
}

}  // namespace switchboard::cli
