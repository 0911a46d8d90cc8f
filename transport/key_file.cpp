#include "switchboard/transport/key_file.hpp"

#include <sys/stat.h>

#include <fstream>

namespace switchboard::transport {

Result<void> write_key_file(const std::filesystem::path& path, const std::string& line, mode_t mode) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  const mode_t old = ::umask(0777 & ~mode);  // created with `mode`, never wider for a moment
  std::ofstream out(path);
  ::umask(old);
  out << line << "\n";
  out.close();
  if (!out) return make_error(errc::unavailable, "cannot write " + path.string());
  return {};
}

Result<void> make_key_dir(const std::filesystem::path& file) {
  const auto dir = file.parent_path();
  std::error_code ec;
  if (dir.empty() || std::filesystem::exists(dir, ec)) return {};
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(errc::unavailable, "cannot create " + dir.string() + ": " + ec.message());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  return {};
}

Result<std::string> read_key_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return make_error(errc::unavailable, "cannot read key file " + path.string());
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

}  // namespace switchboard::transport
