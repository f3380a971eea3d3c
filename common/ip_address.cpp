#include "common/ip_address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

namespace nodeagent {

int parseIpLiteral(std::string_view text, std::array<uint8_t, 16>& bytes) {
  std::string s(text);  // inet_pton needs a terminated string
  if (::inet_pton(AF_INET, s.c_str(), bytes.data()) == 1) return AF_INET;
  if (::inet_pton(AF_INET6, s.c_str(), bytes.data()) == 1) return AF_INET6;
  return 0;
}

std::string formatIpLiteral(int family, const std::array<uint8_t, 16>& bytes) {
  if (family != AF_INET && family != AF_INET6) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

}  // namespace nodeagent
