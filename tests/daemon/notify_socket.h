// The NOTIFY_SOCKET a daemon test owns: a unix datagram socket bound at `path`, where the
// daemon under test sends READY=1, STATUS=, WATCHDOG=1 as it would to systemd.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "common/fd.h"

namespace nodeagent::testing {

inline Fd bindNotifySocket(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Fd();
  return fd;
}

}  // namespace nodeagent::testing
