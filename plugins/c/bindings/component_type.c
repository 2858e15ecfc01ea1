// Not generated: the companion of the wit-bindgen bindings in this directory.
//
// `wit-bindgen c --no-object-file` leaves out the binary
// `<world>_component_type.o` (the world's type, which `wasm-tools component
// embed` adds instead), but the generated `<world>.c` still calls a function
// that object defined, to force it into the link. These empty definitions
// stand in for it. Compile this file with the bindings of any world.
void __component_type_object_force_link_filter_plugin(void) {}
void __component_type_object_force_link_factory_plugin(void) {}
void __component_type_object_force_link_plugin(void) {}
