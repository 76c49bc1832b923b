// Replays fuzz inputs without libFuzzer (STYLE.md §9: the GCC build replays corpus/ through a
// tiny main()). Arguments are files or directories (every regular file in them, sorted); each
// input is passed to LLVMFuzzerTestOneInput() once, in a child process of its own, so that one
// failing input does not hide the others. A failed check aborts the child; an input that runs
// longer than VEPF_FUZZ_REPLAY_TIMEOUT seconds (default 60) is a hang and fails too. The exit
// status is 1 when any input failed; every failing input is listed at the end.
// VEPF_FUZZ_REPLAY_NOFORK=1 runs the inputs in this process instead (for a debugger).
//
//   vringh_fuzz_replay tests/fuzz/corpus/vringh_fuzz [more files or directories...]

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

void run_one(const std::vector<char>& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

/// Runs one input in a child. Returns an empty string on success, else what went wrong.
std::string run_forked(const std::vector<char>& bytes, unsigned timeout) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    alarm(timeout);  // SIGALRM's default action ends the child: reported as a hang below
    run_one(bytes);
    std::fflush(nullptr);
    _exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return {};
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) return "timed out (a hang)";
  if (WIFSIGNALED(st))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" +
           strsignal(WTERMSIG(st)) + ")";
  return "exit status " + std::to_string(WEXITSTATUS(st));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  const char* t = std::getenv("VEPF_FUZZ_REPLAY_TIMEOUT");
  const unsigned timeout = t ? static_cast<unsigned>(std::strtoul(t, nullptr, 10)) : 60;
  const bool nofork = std::getenv("VEPF_FUZZ_REPLAY_NOFORK") != nullptr;

  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(p, ec)) {
      inputs.push_back(p);
    } else {
      std::fprintf(stderr, "%s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "no inputs found\n");
    return 2;
  }

  std::vector<std::string> failed;
  for (const auto& p : inputs) {
    std::ifstream f(p, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "%s: cannot read\n", p.c_str());
      return 2;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                  std::istreambuf_iterator<char>());
    std::printf("%s (%zu bytes)\n", p.c_str(), bytes.size());
    if (nofork) {
      run_one(bytes);
      continue;
    }
    const std::string why = run_forked(bytes, timeout);
    if (!why.empty()) {
      std::printf("  FAILED: %s\n", why.c_str());
      failed.push_back(p.string() + ": " + why);
    }
  }
  std::printf("replayed %zu inputs, %zu failed\n", inputs.size(), failed.size());
  for (const auto& f : failed) std::printf("FAILED %s\n", f.c_str());
  return failed.empty() ? 0 : 1;
}
