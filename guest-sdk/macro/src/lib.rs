//! The `#[handler]` attribute of `mod-wasm-guest`; see that crate's docs.

use proc_macro::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, parse_macro_input};

/// Makes `fn NAME(req: Request) -> impl IntoResponse` (or `async fn`) the
/// component's `wasi:http/incoming-handler`. The argument may be any
/// `FromRequest` type instead: `http::Request<String>` (or `Vec<u8>`,
/// `Bytes`) has the body read whole first. The function stays callable
/// as written (for tests); the export calls it once per request.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[handler] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(&function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand(function: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let signature = &function.sig;
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "a #[handler] function cannot be generic",
        ));
    }
    let arguments = signature.inputs.len();
    if arguments != 1 || matches!(signature.inputs.first(), Some(FnArg::Receiver(_))) {
        return Err(syn::Error::new(
            signature.inputs.span(),
            "a #[handler] function takes one argument, the request: `fn handle(req: Request)`",
        ));
    }
    let name = &signature.ident;
    let serve = if signature.asyncness.is_some() {
        quote!(serve_async)
    } else {
        quote!(serve)
    };
    Ok(quote! {
        #function

        const _: () = {
            struct ModWasmHandler;

            impl ::mod_wasm_guest::wasi::exports::http::incoming_handler::Guest for ModWasmHandler {
                // Names no handler function can have, so that its own
                // name never shadows them.
                fn handle(
                    __mod_wasm_request: ::mod_wasm_guest::wasi::http::types::IncomingRequest,
                    __mod_wasm_out: ::mod_wasm_guest::wasi::http::types::ResponseOutparam,
                ) {
                    ::mod_wasm_guest::__private::#serve(__mod_wasm_request, __mod_wasm_out, #name);
                }
            }

            ::mod_wasm_guest::wasi::http::proxy::export!(ModWasmHandler);
        };
    })
}
