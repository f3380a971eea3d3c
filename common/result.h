// Result<T>: the project's error type. Environment failures are returned, never thrown.
#pragma once

#include <cerrno>
#include <expected>
#include <source_location>
#include <string>
#include <system_error>
#include <utility>

namespace nodeagent {

// An error that says what failed (context), why (code) and where it was raised.
class Error {
 public:
  Error() = default;
  Error(std::error_code code, std::string context,
        std::source_location where = std::source_location::current())
      : code_(code), context_(std::move(context)), where_(where) {}

  // An error from the current errno, e.g. Error::fromErrno("open /proc/sys/x").
  static Error fromErrno(std::string context,
                         std::source_location where = std::source_location::current()) {
    return Error(std::error_code(errno, std::generic_category()), std::move(context), where);
  }
  static Error fromErrno(int err, std::string context,
                         std::source_location where = std::source_location::current()) {
    return Error(std::error_code(err, std::generic_category()), std::move(context), where);
  }
  // An error with no system code: invalid input, protocol violations.
  static Error invalid(std::string context,
                       std::source_location where = std::source_location::current()) {
    return Error(std::make_error_code(std::errc::invalid_argument), std::move(context), where);
  }

  const std::error_code& code() const { return code_; }
  const std::string& context() const { return context_; }
  const std::source_location& where() const { return where_; }
  int errnoValue() const { return code_.category() == std::generic_category() ? code_.value() : 0; }

  // "context: reason" (the reason is omitted for plain invalid-input errors).
  std::string message() const {
    if (code_ == std::errc::invalid_argument || !code_) return context_;
    return context_ + ": " + code_.message();
  }
  // message() plus the source location, for debug logs.
  std::string describe() const {
    return message() + " [" + where_.file_name() + ":" + std::to_string(where_.line()) + "]";
  }

  // Prefix more context, keeping the code and location: "apply sysctl: open ...".
  Error& wrap(const std::string& outer) {
    context_ = outer + ": " + context_;
    return *this;
  }

 private:
  std::error_code code_;
  std::string context_;
  std::source_location where_;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Error e) { return std::unexpected<Error>(std::move(e)); }
inline std::unexpected<Error> failInvalid(
    std::string context, std::source_location where = std::source_location::current()) {
  return std::unexpected<Error>(Error::invalid(std::move(context), where));
}
inline std::unexpected<Error> failErrno(
    std::string context, std::source_location where = std::source_location::current()) {
  return std::unexpected<Error>(Error::fromErrno(std::move(context), where));
}
inline std::unexpected<Error> failErrno(
    int err, std::string context, std::source_location where = std::source_location::current()) {
  return std::unexpected<Error>(Error::fromErrno(err, std::move(context), where));
}

}  // namespace nodeagent
