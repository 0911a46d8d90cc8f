#include "link_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <list>
#include <mutex>
#include <system_error>

namespace switchboard::testing {
namespace {

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

struct LinkProxy::Impl {
  int listener = -1;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::list<std::thread> pumps;  ///< two per connection; joined at destruction
};

LinkProxy::LinkProxy(int listen_port, int target_port) : impl_(std::make_unique<Impl>()), listen_port_(listen_port) {
  impl_->listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(impl_->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(listen_port);
  if (::bind(impl_->listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(impl_->listener, 64) != 0) {
    int e = errno;
    ::close(impl_->listener);
    throw std::system_error(e, std::generic_category(), "link proxy: listen on port " + std::to_string(listen_port));
  }
  thread_ = std::thread([this, target_port] {
    Impl& impl = *impl_;
    while (!impl.stopping) {
      pollfd p{impl.listener, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;  // 50 ms: how soon the destructor is seen
      int in = ::accept4(impl.listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) continue;
      ++accepted_;
      if (mode_ == Mode::cut) {
        ::close(in);
        continue;
      }
      int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in t = loopback(target_port);
      if (::connect(out, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {  // the target is down: so is the link
        ::close(out);
        ::close(in);
        continue;
      }
      int one = 1;
      ::setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // Each direction pumps on its own thread; either end closing (or a cut) shuts
      // both sockets down, which ends the other pump too. The last pump closes them.
      auto shared = std::make_shared<std::pair<int, int>>(in, out);
      auto closer = std::shared_ptr<void>(nullptr, [shared](void*) {
        ::close(shared->first);
        ::close(shared->second);
      });
      const std::uint64_t epoch = epoch_.load();
      auto pump = [this, closer, epoch, &impl](int from, int to) {
        char buffer[64 * 1024];
        while (!impl.stopping && epoch_.load() == epoch) {
          if (mode_ == Mode::hold) {  // read nothing: the bytes wait in the kernel, as on a dead route
            ::poll(nullptr, 0, 10);
            continue;
          }
          pollfd p{from, POLLIN, 0};
          if (::poll(&p, 1, 20) <= 0) continue;
          ssize_t n = ::recv(from, buffer, sizeof buffer, 0);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          if (mode_ == Mode::slow) ::poll(nullptr, 0, static_cast<int>(delay_ms_.load()));  // the link's latency
          if (!write_all(to, buffer, static_cast<std::size_t>(n))) break;
        }
        ::shutdown(from, SHUT_RDWR);
        ::shutdown(to, SHUT_RDWR);
      };
      std::lock_guard lock(impl.mu);
      impl.pumps.emplace_back(pump, in, out);
      impl.pumps.emplace_back(pump, out, in);
    }
  });
}

LinkProxy::~LinkProxy() {
  impl_->stopping = true;
  thread_.join();
  for (auto& t : impl_->pumps) t.join();
  ::close(impl_->listener);
}

void LinkProxy::set_mode(Mode mode, std::chrono::milliseconds delay) {
  delay_ms_ = delay.count();
  if (mode == Mode::cut) ++epoch_;
  mode_ = mode;
}

}  // namespace switchboard::testing
