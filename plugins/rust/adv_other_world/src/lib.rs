//! `adv_other_world`: a well-formed component for another contract
//! (`other:thing/greeter`, see wit/greeter.wit), for the host's load-time
//! type check: it must be refused as exporting neither factory nor filter.

wit_bindgen::generate!({
    world: "greeter",
    path: "wit",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
