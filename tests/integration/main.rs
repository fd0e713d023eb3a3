mod io;
