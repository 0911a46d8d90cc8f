// `switchboard chat`: one user in one room, for a person at a terminal or a script at a
// pipe.
//
// Two threads, each owning what it waits on. The link thread owns the connection to the
// node (a Client and a PresenceClient, which belong to one thread each) and never writes
// to the terminal; the terminal thread owns the terminal and never waits on the node. They
// trade values through two mailboxes (Ask: terminal -> link, Tell: link -> terminal).
//
// - One's own line: Enter takes the line out of the editor without echoing it. It shows
//   under the conversation as pending ("sending", or "queued" while the node is away)
//   until the room delivers it; then it is printed once, in seq order, like everyone's.
// - Typing: an edit of the line sends the room a presence `typing`, at most once per
//   kTypingEvery; others' typing shows on a status line above the prompt for the TTL
//   their notice carries.
// - Output that arrives while a line is typed: libedit (its own el_* API; BSD licence)
//   edits the line. New lines are printed where the editor's block was (pending lines,
//   status line, prompt and partial line), and the block is drawn again below them
//   (LineEditor::print), the partial line and its cursor as they were.
// - Reconnecting: when the node stops answering (a request times out, or nothing was
//   heard from it for kQuiet and a last_seq probe times out), the link says so once,
//   drops the connection and opens a new one with backoff. The room is followed again
//   after the last seq shown, so nothing is missed or shown twice; lines typed meanwhile
//   wait in the outbox and are sent with the client message id they were given when
//   typed, so a line the node stored before it went away is stored once.
#include "switchboard/cli/commands.hpp"

#include <histedit.h>
#include <langinfo.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <clocale>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cwchar>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"
#include "switchboard/common/overloaded.hpp"

namespace switchboard::cli {
namespace {

using client::Client;
using client::ClientOptions;
using client::Millis;
using client::PresenceClient;
using transport::Availability;
using transport::PresenceEvent;
using transport::RoomMessage;
using SteadyClock = std::chrono::steady_clock;

/// A typing notice per this while keys come: the node shows one for its typing TTL (5 s)
/// and refuses more than one a second per session.
constexpr Millis kTypingEvery{2500};
/// Shown for this long when a typing event carries no TTL.
constexpr Millis kTypingShown{5000};
/// Nothing heard from the node (no message, no heads event, which it sends at least every
/// second) for this long: a last_seq probe tells whether it is still there.
constexpr Millis kQuiet{2000};
/// Each request's attempts while chatting: a node that answers none of 3 in 3 s is gone
/// as far as a person at a terminal can tell, and they are told so.
constexpr Millis kAttemptTimeout{1000};
constexpr int kAttempts = 3;
/// Reconnect backoff: the first wait, doubled each failed try up to the last, plus up to
/// a quarter of it at random (many clients of a restarted node do not come back at once).
constexpr Millis kFirstRetry{250};
constexpr Millis kLastRetry{4000};
/// On leaving, how long what was typed gets to be acknowledged.
constexpr Millis kDrainFor{30'000};
/// Lines typed and not yet in the room shown under the conversation, at most.
constexpr std::size_t kPendingShown = 5;
/// The room's newest messages shown on entering it.
constexpr std::uint32_t kRecent = 20;

/// The node is gone or not answering: reconnect. Any other error is the node's answer.
bool link_error(const Error& e) { return e.code == errc::timeout || e.code == errc::unavailable; }

std::string describe(const Error& e) { return std::string(errc_name(e.code)) + ": " + e.message; }

// ---- what the two threads trade ------------------------------------------------------

/// Asked of the link thread by the terminal thread.
namespace ask {
struct Send {
  std::string cmid, body;  ///< the cmid is chosen once, when typed, and kept across resends
};
struct Typing {};
struct SetStatus {
  Availability status = Availability::online;
  std::string text;
};
}  // namespace ask
using Ask = std::variant<ask::Send, ask::Typing, ask::SetStatus>;

/// Told the terminal thread by the link thread.
namespace tell {
struct Here {
  std::vector<std::string> users;
};
struct Message {  ///< the room's messages: in seq order, each once
  RoomMessage message;
};
struct Presence {
  PresenceEvent event;
};
struct Acked {  ///< stored at `seq`; shown when the room delivers it
  std::string cmid;
  std::uint64_t seq = 0;
};
struct Refused {  ///< the node will not take it (too large, rate limited, ...): not sent
  std::string cmid;
  Error error;
};
struct Lost {  ///< the node stopped answering; reconnecting
  Error why;
};
struct Retrying {  ///< try `attempt` to reconnect failed; the next in `next`
  int attempt = 0;
  Error why;
  Millis next{0};
};
struct Reconnected {};
struct Notice {
  std::string text;
};
struct Failed {  ///< the room cannot be followed any more: the command ends (1)
  std::string what;
  Error error;
};
}  // namespace tell
using Tell = std::variant<tell::Here, tell::Message, tell::Presence, tell::Acked, tell::Refused, tell::Lost,
                          tell::Retrying, tell::Reconnected, tell::Notice, tell::Failed>;

/// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

/// A queue from one thread to the other. With a wake descriptor (an eventfd) every push
/// makes it readable, so the receiver polls it beside its other inputs.
template <class T>
class Mailbox {
 public:
  explicit Mailbox(int wake = -1) : wake_(wake) {}
  void push(T item) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(item));
    }
    if (wake_ >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(wake_, &one, sizeof one);
    }
  }
  std::deque<T> take() {
    std::lock_guard lock(mu_);
    return std::exchange(items_, {});
  }

 private:
  std::mutex mu_;
  std::deque<T> items_;
  int wake_;
};

// ---- the link thread -----------------------------------------------------------------

/// One connection to the node at a time (a Client following the room and a presence
/// session), the room followed after `shown_`, and the outbox of lines typed and not yet
/// acknowledged or refused. Used by one thread: the caller's for open_first, then run's.
class RoomLink {
 public:
  RoomLink(const ClientArgs& args, ClientOptions options, Mailbox<Tell>& tell)
      : args_(args), options_(std::move(options)), tell_(tell) {}
  /// Waits for the connections closed on their own threads.
  ~RoomLink() = default;
  RoomLink(const RoomLink&) = delete;
  RoomLink& operator=(const RoomLink&) = delete;

  /// The first connection: enters the room, opens the presence session, tells who is
  /// here and the room's newest messages, and follows it. A failure ends the command:
  /// there is nothing yet to reconnect to (a mistyped --connect or --keys, say); `what`
  /// names the step that failed.
  Result<void> open_first(std::string& what) {
    auto c = open(true, what);
    if (!c) return c.error();
    conn_ = std::move(*c);
    return {};
  }

  /// Serves the terminal's asks and follows the room until `stop`, reconnecting
  /// whenever the node goes away. Ends with a clean leave of the presence session.
  void run(std::stop_token stop, Mailbox<Ask>& asks) {
    heard_ = SteadyClock::now();
    while (!stop.stop_requested() && !failed_) {
      if (!conn_) {
        reconnect(stop, asks);
        continue;
      }
      for (auto& a : asks.take()) take(std::move(a));
      if (!lost_) keep_following();
      if (lost_) drop();
    }
    if (conn_) (void)conn_->presence->close();  // others see the user leave at once
  }

 private:
  struct Connection {
    std::unique_ptr<Client> client;
    std::unique_ptr<PresenceClient> presence;
    std::vector<std::string> here;
  };
  struct Outgoing {
    std::string cmid, body;
  };

  Result<Connection> open(bool first, std::string& what) {
    Connection c;
    auto opened = [&]() -> Result<void> {
      what = "cannot connect";
      c.client = std::make_unique<Client>(options_);
      what = "cannot enter room '" + args_.room + "'";
      if (auto r = enter(*c.client, args_); !r) return r.error();
      what = "cannot reach presence";
      auto presence = PresenceClient::connect(*c.client, options_);
      if (!presence) return presence.error();
      c.presence = std::move(*presence);
      what = "cannot follow presence";
      if (auto r = c.presence->follow(args_.room); !r) return r.error();
      what = "cannot open a presence session";
      if (auto r = c.presence->open(args_.user); !r) return r.error();
      if (status_) (void)c.presence->set_status(status_->status, status_->text);  // as it was before
      if (auto here = c.presence->who(args_.room))
        for (const auto& u : here->users) c.here.push_back(u.user);
      if (first) {
        what = "history of '" + args_.room + "'";
        auto recent = c.client->history(args_.room, client::HistoryQuery{kRecent, {}, {}});
        if (!recent) return recent.error();
        tell_.push(tell::Here{c.here});
        for (auto& m : recent->messages) deliver(std::move(m));
      }
      what = "cannot follow '" + args_.room + "'";
      return c.client->subscribe(args_.room, shown_);  // after the last seq shown: nothing missed, nothing twice
    };
    Result<void> r = make_error(errc::internal, "not tried");
    try {
      r = opened();
    } catch (const std::exception& e) {  // zmq::error_t: an endpoint ZeroMQ cannot use
      r = make_error(errc::unavailable, e.what());
    }
    if (!r) {
      retire(std::move(c));
      return r.error();
    }
    return c;
  }

  void take(Ask a) {
    std::visit(Overloaded{
                   [&](ask::Send& s) {
                     outbox_.push_back({s.cmid, s.body});
                     if (conn_ && !lost_) send(outbox_.back());
                   },
                   [&](ask::Typing&) {
                     if (!conn_ || lost_) return;  // nobody to tell while the node is away
                     auto r = conn_->presence->typing(args_.room);
                     if (!r && link_error(r.error())) lost_ = r.error();  // else (rate_limited): one notice fewer
                   },
                   [&](ask::SetStatus& s) {
                     const auto before = status_;
                     status_ = s;
                     if (!conn_ || lost_) {
                       tell_.push(tell::Notice{"your status is set once the node is back"});
                       return;
                     }
                     auto r = conn_->presence->set_status(s.status, s.text);
                     if (!r && link_error(r.error())) {
                       lost_ = r.error();  // set on the next session
                     } else if (!r) {
                       status_ = before;
                       tell_.push(tell::Notice{"status not set: " + describe(r.error())});
                     } else {
                       tell_.push(tell::Notice{std::string("you are ") + transport::availability_name(s.status) +
                                               (s.text.empty() ? "" : ": " + s.text)});
                     }
                   },
               },
               a);
  }

  void send(Outgoing o) {  // a copy: publish_async may answer others (and so change the outbox) first
    conn_->client->publish_async(
        args_.room, args_.user, o.body,
        [this, cmid = o.cmid](const Result<transport::PublishOk>& r) { published(cmid, r); }, o.cmid);
  }

  void published(const std::string& cmid, const Result<transport::PublishOk>& r) {
    if (!r && link_error(r.error())) {
      if (!lost_) lost_ = r.error();  // it stays in the outbox and goes again after reconnecting
      return;
    }
    auto it = std::find_if(outbox_.begin(), outbox_.end(), [&](const Outgoing& o) { return o.cmid == cmid; });
    if (it == outbox_.end()) return;  // answered already
    outbox_.erase(it);
    if (r) {
      heard_ = SteadyClock::now();
      tell_.push(tell::Acked{cmid, r->seq});
    } else {
      tell_.push(tell::Refused{cmid, r.error()});
    }
  }

  /// One turn while connected: the room's next message, presence events, a probe if the
  /// node has been quiet.
  void keep_following() {
    auto m = conn_->client->next(Millis(50));
    if (!m) {
      if (link_error(m.error())) {
        if (!lost_) lost_ = m.error();
      } else if (m.error().code != errc::rate_limited) {  // rate_limited: the repair is asked again
        tell_.push(tell::Failed{"following '" + args_.room + "'", m.error()});
        failed_ = true;
      }
      return;
    }
    if (*m) deliver(std::move(**m));
    while (auto e = conn_->presence->next_event(Millis(0))) tell_.push(tell::Presence{std::move(*e)});
    const auto now = SteadyClock::now();
    if (const auto heads = conn_->client->subscription_stats().heads; heads != heads_) {
      heads_ = heads;
      heard_ = now;
    }
    if (lost_ || now - heard_ < kQuiet) return;
    auto last = conn_->client->last_seq(args_.room);
    if (!last && link_error(last.error())) lost_ = last.error();
    else heard_ = SteadyClock::now();
  }

  void deliver(RoomMessage m) {
    if (m.seq <= shown_) return;  // the client delivers each once; the screen never shows one twice
    shown_ = m.seq;
    heard_ = SteadyClock::now();
    tell_.push(tell::Message{std::move(m)});
  }

  void drop() {
    tell_.push(tell::Lost{*lost_});
    lost_.reset();
    retire(std::move(*conn_));
    conn_.reset();
  }

  /// Closes a connection on a thread of its own: its presence keeper may be waiting out a
  /// heartbeat to a node that is gone (up to the heartbeat interval), which reconnecting
  /// need not wait for.
  void retire(Connection c) {
    if (!c.presence) return;  // a Client alone closes at once (linger 0)
    std::erase_if(retired_, [](const Retired& r) { return r.done->load(); });  // joins those that are done
    auto done = std::make_shared<std::atomic<bool>>(false);
    retired_.push_back({std::jthread([c = std::move(c), done]() mutable {
                          c.presence.reset();
                          c.client.reset();
                          *done = true;
                        }),
                        done});
  }

  void reconnect(std::stop_token stop, Mailbox<Ask>& asks) {
    std::minstd_rand random{std::random_device{}()};
    Millis delay = kFirstRetry;
    for (int attempt = 1; !stop.stop_requested(); ++attempt) {
      {
        std::mutex mu;
        std::condition_variable_any wake;
        std::unique_lock lock(mu);
        wake.wait_for(lock, stop, delay, [] { return false; });
      }
      if (stop.stop_requested()) return;
      for (auto& a : asks.take()) take(std::move(a));  // lines wait in the outbox; typing is dropped
      std::string what;
      auto c = open(false, what);
      if (c) {
        conn_ = std::move(*c);
        heads_ = conn_->client->subscription_stats().heads;
        heard_ = SteadyClock::now();
        tell_.push(tell::Reconnected{});
        tell_.push(tell::Here{conn_->here});
        const std::deque<Outgoing> waiting = outbox_;
        for (const auto& o : waiting) send(o);  // with their cmids: what was stored is not stored again
        return;
      }
      if (!link_error(c.error()) && c.error().code != errc::rate_limited) {
        // The node is back and says no (the room deleted, the user removed from it).
        tell_.push(tell::Failed{what, c.error()});
        failed_ = true;
        return;
      }
      delay = std::min(delay * 2, kLastRetry);
      delay += Millis(std::uniform_int_distribution<long>(0, delay.count() / 4)(random));
      tell_.push(tell::Retrying{attempt, Error{c.error().code, what + ": " + c.error().message}, delay});
    }
  }

  const ClientArgs& args_;
  ClientOptions options_;
  Mailbox<Tell>& tell_;
  std::optional<Connection> conn_;
  std::deque<Outgoing> outbox_;  ///< typed, not yet acknowledged or refused, in the order typed
  std::uint64_t shown_ = 0;      ///< the last seq handed to the terminal
  std::optional<Error> lost_;    ///< seen inside a callback or a call; acted on after it
  bool failed_ = false;
  std::optional<ask::SetStatus> status_;  ///< set again on every new session
  SteadyClock::time_point heard_{};
  std::uint64_t heads_ = 0;
  struct Retired {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Retired> retired_;  ///< connections closing; joined when done, and last of all
};

// ---- text on a terminal --------------------------------------------------------------

/// `text` safe to write to a terminal: control characters (ESC among them, which would
/// drive it) shown as ^X, C1 controls as U+FFFD; a line break indents the next line, or
/// with `one_line` is a space.
std::string printable(std::string_view text, bool one_line = false) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += one_line ? " " : "\n    ";
    } else if (c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      out += '^';
      out += static_cast<char>(c ^ 0x40);
    } else if (c == 0xc2 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xe0) == 0x80) {
      out += "\xef\xbf\xbd";  // U+0080..U+009F
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// The columns a character takes (an unknown one: one).
int columns_of(wchar_t c) {
  const int w = ::wcwidth(c);
  return w < 0 ? 1 : w;
}

/// Calls `each(bytes, columns)` for each character of `text` (in the locale's encoding,
/// UTF-8; a byte that starts none counts as a character of one column) until it returns false.
template <class F>
void for_each_char(std::string_view text, F each) {
  std::mbstate_t state{};
  for (std::size_t i = 0; i < text.size();) {
    wchar_t c = 0;
    std::size_t n = std::mbrtowc(&c, text.data() + i, text.size() - i, &state);
    int w = 0;
    if (n == 0 || n > text.size() - i) {  // NUL, invalid or cut short
      state = {};
      n = 1;
      w = 1;
    } else {
      w = columns_of(c);
    }
    if (!each(text.substr(i, n), w)) return;
    i += n;
  }
}

/// The columns `text` takes.
int width(std::string_view text) {
  int used = 0;
  for_each_char(text, [&](std::string_view, int w) { return used += w, true; });
  return used;
}

/// `text` in at most `max` columns: cut, the cut marked "...".
std::string fit(std::string_view text, int max) {
  if (width(text) <= max) return std::string(text);
  std::string out;
  int used = 0;
  for_each_char(text, [&](std::string_view c, int w) {
    if (used + w > max - 3) return false;
    out += c;
    used += w;
    return true;
  });
  return out + "...";
}

/// Chat bodies are UTF-8: the editor reads and measures characters in the locale's
/// encoding, so one that is not UTF-8 (the "C" of a bare environment) gives way to C.UTF-8.
void use_utf8_locale() {
  std::setlocale(LC_CTYPE, "");
  const char* codeset = nl_langinfo(CODESET);
  if (!codeset || std::string_view(codeset) != "UTF-8") std::setlocale(LC_CTYPE, "C.UTF-8");
}

// ---- the line editor -----------------------------------------------------------------

/// libedit on the terminal at stdin and stdout, in its unbuffered mode: the caller polls
/// stdin and hands each key over (read_key), and between keys may print lines above
/// what the editor shows (print). Enter and Ctrl-D are the editor's own functions here:
/// Enter takes the line without echoing it, Ctrl-D on an empty line is the end.
class LineEditor {
 public:
  /// nullptr when libedit cannot edit on this terminal (then lines are read plainly).
  static std::unique_ptr<LineEditor> open(std::string prompt) {
    std::unique_ptr<LineEditor> editor(new LineEditor(std::move(prompt)));
    if (!editor->el_) return nullptr;
    int editing = 0;
    if (el_get(editor->el_.get(), EL_EDITMODE, &editing) != 0 || !editing) return nullptr;
    editor->start();
    return editor;
  }
  /// Clears what it drew; the terminal's modes as they were.
  ~LineEditor() {
    if (!el_) return;
    std::fputs(clear().c_str(), stdout);
    std::fflush(stdout);
    el_set(el_.get(), EL_UNBUFFERED, 0);  // the terminal's own mode
  }
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  struct Editing {};
  struct Entered {
    std::string line;
  };
  struct Ended {};
  using Key = std::variant<Editing, Entered, Ended>;

  /// Runs one editing command from stdin (which is readable: a key, or a key's sequence).
  Key read_key() {
    int count = 0;
    (void)el_gets(el_.get(), &count);
    if (ended_) return Ended{};
    if (entered_) return Entered{std::exchange(entered_, std::nullopt).value()};
    return Editing{};
  }

  /// The line typed so far.
  std::string text() const {
    const LineInfo* line = el_line(el_.get());
    return std::string(line->buffer, line->lastchar);
  }

  /// Prints `lines` where the block was, then draws it again below them: `block`'s lines
  /// (each cut to the terminal's width), the prompt and the line typed so far, the
  /// cursor where it was in it.
  void print(const std::vector<std::string>& lines, const std::vector<std::string>& block) {
    const int cols = columns();
    std::string out = clear();
    for (const auto& l : lines) out += l + "\n";
    for (const auto& b : block) out += fit(b, cols - 1) + "\n";
    block_rows_ = static_cast<int>(block.size());
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    el_set(el_.get(), EL_REFRESH);  // the prompt and the line, from the cursor's column 0
    drawn_ = true;
  }

  /// The terminal changed size (SIGWINCH).
  void resize() { el_resize(el_.get()); }

  /// Ctrl-Z: clears the block, gives the terminal its modes back and stops; once
  /// continued, takes the terminal again. The caller draws the block anew.
  void suspend() {
    std::fputs(clear().c_str(), stdout);
    std::fflush(stdout);
    drawn_ = false;
    block_rows_ = 0;
    el_set(el_.get(), EL_PREP_TERM, 0);
    ::kill(::getpid(), SIGSTOP);
    el_set(el_.get(), EL_PREP_TERM, 1);
  }

 private:
  explicit LineEditor(std::string prompt)
      : history_(history_init(), &history_end),
        el_(el_init("switchboard", stdin, stdout, stderr), &el_end),
        prompt_(std::move(prompt)) {}

  void start() {
    EditLine* el = el_.get();
    el_set(el, EL_CLIENTDATA, this);
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_PROMPT, &LineEditor::prompt_of);
    if (history_) {
      HistEvent event;
      ::history(history_.get(), &event, H_SETSIZE, 500);
      el_set(el, EL_HIST, ::history, history_.get());
    }
    el_source(el, nullptr);  // the person's ~/.editrc (vi mode, bindings)
    el_set(el, EL_ADDFN, "switchboard-send", "Send the line to the room", &LineEditor::on_enter);
    el_set(el, EL_ADDFN, "switchboard-end", "Leave on an empty line, else delete a character",
           &LineEditor::on_ctrl_d);
    for (const char* key : {"^M", "^J"}) {
      el_set(el, EL_BIND, key, "switchboard-send", nullptr);
      el_set(el, EL_BIND, "-a", key, "switchboard-send", nullptr);  // vi command mode too
    }
    el_set(el, EL_BIND, "^D", "switchboard-end", nullptr);
    el_set(el, EL_UNBUFFERED, 1);  // the terminal in the editor's mode; draws the prompt
    drawn_ = true;
  }

  static LineEditor& of(EditLine* el) {
    void* self = nullptr;
    el_get(el, EL_CLIENTDATA, &self);
    return *static_cast<LineEditor*>(self);
  }
  static char* prompt_of(EditLine* el) { return of(el).prompt_.data(); }

  /// Enter: the line is taken and the editor left empty, with nothing echoed (the line
  /// shows once, from the room).
  static unsigned char on_enter(EditLine* el, int) {
    LineEditor& self = of(el);
    self.entered_ = self.text();
    if (!self.entered_->empty() && self.history_) {
      HistEvent event;
      ::history(self.history_.get(), &event, H_ENTER, self.entered_->c_str());
    }
    const LineInfoW* line = el_wline(el);
    el_cursor(el, static_cast<int>(line->lastchar - line->cursor));
    el_deletestr(el, static_cast<int>(line->lastchar - line->buffer));
    return CC_REFRESH;
  }

  /// Ctrl-D: the end on an empty line; else deletes the character under the cursor.
  static unsigned char on_ctrl_d(EditLine* el, int) {
    const LineInfoW* line = el_wline(el);
    if (line->buffer == line->lastchar) {
      of(el).ended_ = true;
      return CC_NORM;
    }
    if (line->cursor == line->lastchar) return CC_ERROR;
    el_cursor(el, 1);
    el_deletestr(el, 1);
    return CC_REFRESH;
  }

  int columns() const {
    int cols = 0;
    if (el_get(el_.get(), EL_GETTC, "co", &cols) != 0 || cols <= 0) cols = 80;
    return cols;
  }

  /// What moves to the first row of the block and clears from there to the screen's end.
  std::string clear() const {
    if (!drawn_) return "";
    const int cols = columns();
    const LineInfoW* line = el_wline(el_.get());
    int col = width(prompt_);
    for (const wchar_t* c = line->buffer; c < line->cursor; ++c) col += columns_of(*c);
    const int up = block_rows_ + col / cols;  // the editor wraps a full row onto the next
    std::string out = "\r";
    if (up > 0) out += "\x1b[" + std::to_string(up) + "A";
    return out + "\x1b[J";
  }

  std::unique_ptr<History, void (*)(History*)> history_;  ///< outlives the editor that uses it
  std::unique_ptr<EditLine, void (*)(EditLine*)> el_;
  std::string prompt_;
  std::optional<std::string> entered_;
  bool ended_ = false;
  bool drawn_ = false;  ///< the block is on the screen, the cursor in its last row
  int block_rows_ = 0;  ///< rows of the block above the prompt
};

// ---- the terminal thread -------------------------------------------------------------

std::optional<Availability> parse_availability(const std::string& word) {
  for (auto a : {Availability::online, Availability::away, Availability::busy})
    if (word == transport::availability_name(a)) return a;
  return std::nullopt;
}

std::string describe(const PresenceEvent& e) {
  using Kind = PresenceEvent::Kind;
  switch (e.kind) {
    case Kind::online: return "is online";
    case Kind::offline: return "went offline";
    case Kind::join: return "joined " + e.room;
    case Kind::leave: return "left " + e.room;
    case Kind::typing: return "is typing...";
    case Kind::status:
      return std::string("is ") + transport::availability_name(e.status) + (e.text.empty() ? "" : ": " + e.text);
  }
  return "?";
}

/// What the person sees and types. With a line editor: the conversation scrolls above a
/// block the editor draws (lines sent and not yet in the room, a status line, the prompt
/// and the line being typed). Without (a pipe): lines in, the conversation out on stdout,
/// what concerns the chat itself on stderr.
class ChatTerminal {
 public:
  ChatTerminal(const ClientArgs& args, std::unique_ptr<LineEditor> editor, Mailbox<Ask>& asks, Mailbox<Tell>& tells,
               int tells_fd, int signals_fd)
      : args_(args),
        editor_(std::move(editor)),
        asks_(asks),
        tells_(tells),
        tells_fd_(tells_fd),
        signals_fd_(signals_fd) {}

  /// Until the person leaves (Ctrl-D, end of input) and what they typed is sent, or
  /// SIGINT/SIGTERM. Returns the exit status, the terminal as it was.
  int run() {
    take_tells();  // who is here and the newest messages, from the first connection
    note("-- " + args_.user + " in " + args_.room + "; type a line to send it, Ctrl-D to leave --");
    while (!exit_) {
      draw();
      pollfd fds[3] = {{signals_fd_, POLLIN, 0}, {tells_fd_, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
      const int n = input_done_ ? 2 : 3;
      if (::poll(fds, n, wait_ms()) < 0 && errno != EINTR) {
        std::perror("switchboard: poll");
        exit_ = 1;
        break;
      }
      if (fds[0].revents) take_signals();
      if (fds[1].revents) take_tells();
      if (n == 3 && fds[2].revents && !exit_) {
        if (!editor_) read_plain();
        else if (fds[2].revents & POLLIN) read_keys();
        else leave();  // the terminal is gone (POLLHUP)
      }
      expire_typing();
      if (input_done_ && !exit_) check_left();
    }
    draw();           // what came with the last event
    editor_.reset();  // the terminal as it was, before the last words
    for (const auto& words : last_words_) std::cerr << words << "\n";
    return *exit_;
  }

 private:
  struct Pending {
    std::string cmid, body;
    bool acked = false;  ///< stored; shown when the room delivers it
  };

  // ---- input ----
  /// Every key the terminal has sent so far (a paste is many), then what they made of the
  /// line: a line pasted with its Enter is no one typing.
  void read_keys() {
    for (int keys = 0; keys < 4096 && !input_done_; ++keys) {
      auto key = editor_->read_key();
      if (std::holds_alternative<LineEditor::Ended>(key)) return leave();
      if (auto* entered = std::get_if<LineEditor::Entered>(&key)) typed(std::move(entered->line));
      pollfd more{STDIN_FILENO, POLLIN, 0};
      if (::poll(&more, 1, 0) <= 0 || !(more.revents & POLLIN)) break;
    }
    edited();
  }

  void read_plain() {
    char buf[4096];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
      if (!partial_.empty()) typed(std::exchange(partial_, {}));
      return leave();
    }
    partial_.append(buf, static_cast<std::size_t>(n));
    for (auto eol = partial_.find('\n'); eol != std::string::npos; eol = partial_.find('\n')) {
      std::string line = partial_.substr(0, eol);
      partial_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      typed(std::move(line));
    }
  }

  void typed(std::string line) {
    if (line.empty()) return;
    if (line == "/status" || line.rfind("/status ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string word, text;
      words >> word;
      std::getline(words >> std::ws, text);
      if (auto status = parse_availability(word)) asks_.push(ask::SetStatus{*status, text});
      else note("usage: /status online|away|busy [TEXT]");
      return;
    }
    Pending p{Client::new_client_msg_id(), std::move(line)};
    asks_.push(ask::Send{p.cmid, p.body});
    pending_.push_back(std::move(p));
    typing_sent_ = {};  // the next line's first key tells the room at once
  }

  /// A key changed the line: the room hears that the user types, at most every kTypingEvery.
  void edited() {
    std::string text = editor_->text();
    if (text == last_text_) return;
    last_text_ = std::move(text);
    if (last_text_.empty() || last_text_[0] == '/' || !online_) return;
    const auto now = SteadyClock::now();
    if (now - typing_sent_ < kTypingEvery) return;
    typing_sent_ = now;
    asks_.push(ask::Typing{});
  }

  void leave() {
    input_done_ = true;
    if (!leave_by_) leave_by_ = SteadyClock::now() + kDrainFor;
    check_left();
  }

  void check_left() {
    if (pending_.empty()) {
      exit_ = 0;
      return;
    }
    if (SteadyClock::now() < *leave_by_) return;
    exit_ = unsent() == 0 ? 0 : 1;
    if (*exit_) say_unsent("the node did not take them within " + std::to_string(kDrainFor.count() / 1000) + " s");
  }

  std::size_t unsent() const {
    return static_cast<std::size_t>(
        std::count_if(pending_.begin(), pending_.end(), [](const Pending& p) { return !p.acked; }));
  }

  /// For stderr at the end: lines typed that the node never took.
  void say_unsent(const std::string& why) {
    if (const auto n = unsent(); n > 0)
      last_words_.push_back("switchboard: " + std::to_string(n) + " line(s) typed were not sent: " + why);
  }

  void take_signals() {
    signalfd_siginfo info;
    while (::read(signals_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      switch (info.ssi_signo) {
        case SIGWINCH:
          if (editor_) editor_->resize();
          redraw_ = true;
          break;
        case SIGTSTP:
          if (editor_) editor_->suspend();
          redraw_ = true;
          break;
        default:  // SIGINT, SIGTERM: leave now
          say_unsent("interrupted");
          exit_ = 0;
      }
    }
  }

  // ---- what the link tells ----
  void take_tells() {
    std::uint64_t count = 0;
    (void)!::read(tells_fd_, &count, sizeof count);
    for (auto& t : tells_.take()) {
      std::visit(Overloaded{
                     [&](tell::Here& h) {
                       std::string line = "* here:";
                       for (const auto& u : h.users) line += " " + u;
                       say(line);
                     },
                     [&](tell::Message& m) { shown(m.message); },
                     [&](tell::Presence& p) { presence(p.event); },
                     [&](tell::Acked& a) {
                       auto it = find(a.cmid);
                       if (it == pending_.end()) return;
                       if (a.seq <= shown_) pending_.erase(it);  // shown already
                       else it->acked = true;
                     },
                     [&](tell::Refused& r) {
                       auto it = find(r.cmid);
                       if (it == pending_.end()) return;
                       note("* not sent: \"" + it->body + "\": " + describe(r.error));
                       pending_.erase(it);
                     },
                     [&](tell::Lost& l) {
                       online_ = false;
                       typing_.clear();
                       retrying_.clear();
                       note("* connection lost, reconnecting... (" + std::string(errc_name(l.why.code)) + ")");
                     },
                     [&](tell::Retrying& r) {
                       retrying_ = "reconnecting: try " + std::to_string(r.attempt) + " failed (" +
                                   std::string(errc_name(r.why.code)) + "), next in " +
                                   std::to_string((r.next.count() + 500) / 1000) + " s";
                     },
                     [&](tell::Reconnected&) {
                       online_ = true;
                       retrying_.clear();
                       note("* reconnected");
                     },
                     [&](tell::Notice& n) { note("* " + n.text); },
                     [&](tell::Failed& f) {
                       last_words_.push_back("switchboard: " + f.what + ": " + describe(f.error));
                       say_unsent("the chat ended");
                       exit_ = 1;
                     },
                 },
                 t);
    }
  }

  void shown(const RoomMessage& m) {
    shown_ = m.seq;
    typing_.erase(m.user);
    if (auto it = find(m.client_msg_id); it != pending_.end() && m.user == args_.user) pending_.erase(it);
    say(message_line(m));
  }

  void presence(const PresenceEvent& e) {
    if (e.user == args_.user) return;
    if (e.kind == PresenceEvent::Kind::typing) {
      typing_[e.user] = SteadyClock::now() + (e.ttl_ms ? Millis(e.ttl_ms) : kTypingShown);
      if (editor_) return;  // on the status line
    } else if (e.kind == PresenceEvent::Kind::offline || e.kind == PresenceEvent::Kind::leave) {
      typing_.erase(e.user);
    }
    say("* " + e.user + " " + describe(e));
  }

  // ---- output ----
  /// A line of the conversation: above the editor's block, or on stdout.
  void say(const std::string& line) {
    if (editor_) {
      said_.push_back(printable(line));
    } else {
      std::cout << line << "\n";
      std::cout.flush();
    }
  }

  /// A line about the chat itself (connection, errors): above the block, or on stderr.
  void note(const std::string& line) {
    if (editor_) said_.push_back(printable(line));
    else std::cerr << line << "\n";
  }

  std::vector<std::string> block() const {
    std::vector<std::string> rows;
    // The newest few: a block taller than the screen could not be drawn again in place.
    const std::size_t skipped = pending_.size() > kPendingShown ? pending_.size() - kPendingShown : 0;
    if (skipped > 0) rows.push_back("  (" + std::to_string(skipped) + " more before these)");
    for (auto p = pending_.begin() + static_cast<std::ptrdiff_t>(skipped); p != pending_.end(); ++p)
      rows.push_back("  " + args_.user + ": " + printable(p->body, true) +
                     (p->acked ? "  (sent)" : online_ ? "  (sending)" : "  (queued)"));
    std::vector<std::string> status;
    if (!online_) status.push_back(retrying_.empty() ? "connection lost: reconnecting..." : retrying_);
    std::vector<std::string> names;
    for (const auto& [user, until] : typing_) names.push_back(user);
    if (names.size() == 1) status.push_back(names[0] + " is typing...");
    else if (names.size() == 2) status.push_back(names[0] + " and " + names[1] + " are typing...");
    else if (names.size() > 2) status.push_back(names[0] + " and " + std::to_string(names.size() - 1) + " others are typing...");
    if (input_done_ && !pending_.empty())
      status.push_back("leaving once " + std::to_string(pending_.size()) + " line(s) are in the room (Ctrl-C: now)");
    if (!status.empty()) {
      std::string line = "--";
      for (const auto& s : status) line += " " + s + (&s == &status.back() ? "" : " |");
      rows.push_back(line);
    }
    return rows;
  }

  void draw() {
    if (!editor_) return;
    auto rows = block();
    if (said_.empty() && rows == drawn_ && !redraw_) return;
    editor_->print(said_, rows);
    said_.clear();
    drawn_ = std::move(rows);
    redraw_ = false;
  }

  void expire_typing() {
    const auto now = SteadyClock::now();
    std::erase_if(typing_, [&](const auto& t) { return t.second <= now; });
  }

  /// Until the next thing due without input: a typing indicator ending, the leaving deadline.
  int wait_ms() const {
    std::optional<SteadyClock::time_point> due = leave_by_;
    for (const auto& [user, until] : typing_)
      if (!due || until < *due) due = until;
    if (!due) return -1;
    const auto left = std::chrono::ceil<Millis>(*due - SteadyClock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
  }

  std::vector<Pending>::iterator find(const std::string& cmid) {
    return std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.cmid == cmid; });
  }

  const ClientArgs& args_;
  std::unique_ptr<LineEditor> editor_;
  Mailbox<Ask>& asks_;
  Mailbox<Tell>& tells_;
  int tells_fd_, signals_fd_;
  std::vector<Pending> pending_;  ///< typed, not yet shown from the room, in the order typed
  std::map<std::string, SteadyClock::time_point> typing_;  ///< others typing, until
  std::uint64_t shown_ = 0;
  bool online_ = true;
  std::string retrying_;  ///< the status line's account of reconnecting
  std::vector<std::string> said_;  ///< to print above the block at the next draw
  std::vector<std::string> drawn_;  ///< the block as last drawn
  bool redraw_ = false;
  std::string last_text_;
  SteadyClock::time_point typing_sent_{};
  std::string partial_;  ///< piped input after its last line break
  bool input_done_ = false;
  std::optional<SteadyClock::time_point> leave_by_;
  std::optional<int> exit_;
  std::vector<std::string> last_words_;  ///< for stderr once the terminal is itself again
};

}  // namespace

int chat(const ClientArgs& args) {
  const char* term = std::getenv("TERM");
  const bool on_terminal = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO) && term && *term &&
                           std::string_view(term) != "dumb";
  // Signals are read from a descriptor the terminal thread polls. They are blocked
  // before any thread starts, so that every thread (ZeroMQ's, the link's) inherits that.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (on_terminal) {
    sigaddset(&signals, SIGWINCH);
    sigaddset(&signals, SIGTSTP);
  }
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, &signals, &before);
  Fd signal_fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  Fd wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (signal_fd.get() < 0 || wake_fd.get() < 0) {
    std::perror("switchboard: chat");
    return 1;
  }

  auto options = client_options(args);
  if (!options) return fail("cannot connect", options.error());
  options->attempt_timeout = kAttemptTimeout;
  options->max_attempts = kAttempts;
  Mailbox<Tell> tells(wake_fd.get());
  Mailbox<Ask> asks;
  RoomLink link(args, *options, tells);
  std::string what;
  if (auto r = link.open_first(what); !r) return fail(what, r.error());

  std::unique_ptr<LineEditor> editor;
  if (on_terminal) {
    use_utf8_locale();
    editor = LineEditor::open(args.room + "> ");
  }
  ChatTerminal terminal(args, std::move(editor), asks, tells, wake_fd.get(), signal_fd.get());
  std::jthread link_thread([&](std::stop_token stop) { link.run(stop, asks); });
  const int status = terminal.run();
  // Leaving: a second Ctrl-C or SIGTERM, while the presence session closes, ends the
  // process at once.
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  link_thread.request_stop();
  link_thread.join();
  return status;
}

}  // namespace switchboard::cli
