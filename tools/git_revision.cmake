# Writes OUTPUT, a header defining GPT2_GIT_REVISION as `git describe --always --dirty` of
# SOURCE_DIR ("" when git or the repository is absent). Run at every build; the file is only
# rewritten when the revision changes, so nothing recompiles otherwise.
cmake_minimum_required(VERSION 3.24)
set(revision "")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" --no-optional-locks -C "${SOURCE_DIR}"
    describe --always --dirty
    RESULT_VARIABLE status OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(status EQUAL 0)
    set(revision "${described}")
  endif()
endif()
file(CONFIGURE OUTPUT "${OUTPUT}" CONTENT "#define GPT2_GIT_REVISION \"@revision@\"\n" @ONLY)
