//! Fuzz target: the JSON request bodies of the HTTP API (`/api/ask`, the OpenAI routes),
//! parsed and validated as the server does before any model runs. The first byte picks the
//! route.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let routes = anjeon::server::JSON_ROUTES;
    let route = routes[pick as usize % routes.len()];
    let _ = anjeon::server::check_request(route, body);
});
