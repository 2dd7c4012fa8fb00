# gpt2_c_sources(<out-var> <target>...): the absolute paths of the C sources (.c) of the given
# targets, generated ones included, as their own CMakeLists.txt list them, except tools/gpt2.c
# (the command line's main()). The fuzz build and the seed replays compile their harnesses
# against these, so that a source file added to a target is in them without anyone listing it.
function(gpt2_c_sources out)
  set(result)
  foreach(target IN LISTS ARGN)
    get_target_property(sources ${target} SOURCES)
    get_target_property(source_dir ${target} SOURCE_DIR)
    foreach(source IN LISTS sources)
      if(source MATCHES "\\.c$")
        cmake_path(ABSOLUTE_PATH source BASE_DIRECTORY ${source_dir} NORMALIZE)
        list(APPEND result ${source})
      endif()
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES result)
  list(FILTER result EXCLUDE REGEX "/tools/gpt2\\.c$")
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# gpt2_sources_library(<name> <c-sources>...): a static library of those sources with the
# engine's include folders and definitions (and the CUDA toolkit's headers, which some host
# sources include), without linking the engine itself: nothing of it but these C files is built,
# and a harness pulls in only the objects it calls.
function(gpt2_sources_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC
    $<TARGET_PROPERTY:gpt2_engine,INTERFACE_INCLUDE_DIRECTORIES>
    ${CUDAToolkit_INCLUDE_DIRS} ${STB_INCLUDE_DIR}
    ${PROJECT_BINARY_DIR}/tools/generated)
  target_compile_definitions(${name} PUBLIC
    $<TARGET_PROPERTY:gpt2_engine,INTERFACE_COMPILE_DEFINITIONS>)
  if(TARGET gpt2_emu)
    target_compile_definitions(${name} PUBLIC
      $<TARGET_PROPERTY:gpt2_emu,INTERFACE_COMPILE_DEFINITIONS>)
  endif()
  target_compile_options(${name} PRIVATE -w) # warnings are the real build's business
  target_link_libraries(${name} PUBLIC Threads::Threads m)
  add_dependencies(${name} tokenizer_vocab gpt2_git_revision)
endfunction()
