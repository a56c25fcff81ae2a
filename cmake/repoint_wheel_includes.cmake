# Include after rosidl_generate_interfaces(): the message wheels on PyPI export
# *__rosidl_generator_py targets whose include directories point at the wheel builder's
# /opt/python/... tree. Re-point them at this interpreter's headers. A normal ROS install has no
# such paths, so this changes nothing there. Used by every interface package this project
# generates (CMakeLists.txt, interfaces/tf2_msgs, the launch tests' composition_interfaces).
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
get_property(_srender_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target IN LISTS _srender_imported)
  get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(_dirs AND "${_dirs}" MATCHES "/opt/python/")
    set_target_properties(${_target} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
  endif()
endforeach()
