// Runs the facevault binary (end to end through the CLI) and captures stdout and exit code.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace fv::test {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) if (!l.empty()) v.push_back(l);
    return v;
  }
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) { if (c == '\'') q += "'\\''"; else q += c; }
  return q + "'";
}

// args are quoted individually; stderr goes to /dev/null unless keep_stderr.
inline RunResult run_facevault(const std::vector<std::string>& args, bool keep_stderr = false) {
  std::string cmd = shell_quote(FACEVAULT_BINARY);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += keep_stderr ? " 2>&1" : " 2>/dev/null";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 1 << 16> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace fv::test
