// Every StatusCode the service can return → its HTTP status, through the one table
// (server/http_status.h) the server maps errors with. Walks the whole enum: a code added to
// StatusCode without a row in the expectations below fails here, and so does a row changed in
// the table. Also: the mapping looks at the code only, never at the message text.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "server/http_status.h"
#include "server/http_util.h"

namespace fv::server {
namespace {

// The table of the brief (docs: src/server/README.md, "Errors").
const std::map<StatusCode, int>& expected() {
  static const std::map<StatusCode, int> m = {
      {StatusCode::kOk, 200},
      {StatusCode::kInvalidArgument, 400},
      {StatusCode::kUnauthenticated, 401},
      {StatusCode::kPermissionDenied, 403},
      {StatusCode::kNotFound, 404},
      {StatusCode::kAlreadyExists, 409},
      {StatusCode::kResourceExhausted, 413},
      {StatusCode::kUnsupported, 415},
      {StatusCode::kCorruptData, 422},
      {StatusCode::kFailedPrecondition, 422},
      {StatusCode::kUnavailable, 503},
      {StatusCode::kAborted, 409},
      {StatusCode::kStorageFull, 507},
      {StatusCode::kIoError, 500},
      {StatusCode::kInternal, 500},
  };
  return m;
}

// Every value of the enum: from kOk up to the first value status_code_name does not know.
std::vector<StatusCode> all_codes() {
  std::vector<StatusCode> out;
  for (int i = 0; i < 256; ++i) {
    const auto c = static_cast<StatusCode>(i);
    if (std::string(status_code_name(c)) == "unknown") break;
    out.push_back(c);
  }
  return out;
}

TEST(HttpStatus, EveryStatusCodeHasItsHttpStatus) {
  const auto codes = all_codes();
  EXPECT_EQ(codes.size(), expected().size()) << "a StatusCode without an expected HTTP status here (or one gone)";
  for (StatusCode c : codes) {
    SCOPED_TRACE(status_code_name(c));
    auto it = expected().find(c);
    ASSERT_NE(it, expected().end()) << "no expectation for this code: add it to the table of the brief";
    EXPECT_EQ(http_status_for(c), it->second);
  }
}

TEST(HttpStatus, ErrorsCarryTheMappedStatusAndAName) {
  for (StatusCode c : all_codes()) {
    if (c == StatusCode::kOk) continue;
    SCOPED_TRACE(status_code_name(c));
    const HttpError e = from_status(Status(c, "some message"));
    EXPECT_EQ(e.status, http_status_for(c));
    if (e.status != 500) EXPECT_EQ(e.message, "some message");
    EXPECT_NE(e.code, "error") << "every mapped status has a short name in error bodies";
    const auto body = error_body(e);
    EXPECT_EQ(body["error"]["status"], e.status);
    EXPECT_EQ(body["error"]["code"], e.code);
  }
}

// A 500 sends no detail of the failure (SQL text, paths, an exception's text): the server's log
// has it under the incident id the reply names.
TEST(HttpStatus, AFailureOfTheServerIsLoggedNotSent) {
  for (StatusCode c : {StatusCode::kInternal, StatusCode::kIoError}) {
    testing::internal::CaptureStderr();
    const HttpError e = from_status(Status(c, "query failed: INSERT INTO face /var/lib/facevault/vault.db"));
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_EQ(e.status, 500);
    EXPECT_EQ(e.message.find("INSERT"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("/var/lib"), std::string::npos) << e.message;
    const auto at = e.message.find("incident ");
    ASSERT_NE(at, std::string::npos) << e.message;
    const std::string id = e.message.substr(at + 9, 12);
    EXPECT_NE(log.find("incident " + id + ": "), std::string::npos) << log;
    EXPECT_NE(log.find("INSERT INTO face /var/lib/facevault/vault.db"), std::string::npos) << log;
  }
  testing::internal::CaptureStderr();
  const HttpError thrown = internal_failure("unexpected exception: basic_string::_M_create");
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(thrown.message.find("basic_string"), std::string::npos) << thrown.message;
  EXPECT_NE(log.find("basic_string::_M_create"), std::string::npos) << log;
}

// The words of a message decide nothing: the prefixes the server once matched on
// ("role '…", "no subject '…", "no lawful basis …") map by their code like any other text.
TEST(HttpStatus, MessageTextDoesNotChangeTheStatus) {
  for (const std::string m : {"role 'enroller' may not search", "no subject 'x'", "no lawful basis 7", "anything"}) {
    EXPECT_EQ(from_status(Status(StatusCode::kFailedPrecondition, m)).status, 422) << m;
    EXPECT_EQ(from_status(Status(StatusCode::kPermissionDenied, m)).status, 403) << m;
    EXPECT_EQ(from_status(Status(StatusCode::kNotFound, m)).status, 404) << m;
  }
}

}  // namespace
}  // namespace fv::server
